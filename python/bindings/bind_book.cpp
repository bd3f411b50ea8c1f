#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "tradecore/book/features.hpp"
#include "tradecore/book/lobster.hpp"
#include "tradecore/book/order_book.hpp"
#include "tradecore/book/synthetic.hpp"

namespace tradecore::bindings {

namespace {

using book::OrderBook;
using book::Side;

py::dtype event_dtype() {
  py::list names, formats, offsets;
  auto field = [&](const char* n, const char* f, std::size_t off) {
    names.append(n);
    formats.append(f);
    offsets.append(off);
  };
  field("ts", "<i8", offsetof(book::Event, ts));
  field("order_id", "<u8", offsetof(book::Event, order_id));
  field("other_id", "<u8", offsetof(book::Event, other_id));
  field("price", "<i8", offsetof(book::Event, price));
  field("size", "<i8", offsetof(book::Event, size));
  field("type", "u1", offsetof(book::Event, type));
  field("side", "i1", offsetof(book::Event, side));
  field("reason", "u1", offsetof(book::Event, reason));
  return py::dtype(names, formats, offsets, sizeof(book::Event));
}

// A writable, C-contiguous 1-D array of T (caller-owned output).
template <class T>
T* out_ptr(const py::array& a, const char* name, py::ssize_t n) {
  if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1 || a.shape(0) != n || !a.writeable() ||
      a.strides(0) != static_cast<py::ssize_t>(sizeof(T)))
    throw std::invalid_argument(std::string(name) + ": expected a writable contiguous 1-D " +
                                py::str(py::dtype::of<T>()).cast<std::string>() +
                                " array of length " + std::to_string(n));
  return static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
}

// A C-contiguous 1-D array of T of length n (n < 0: any length).
template <class T>
const T* in_ptr(const py::array& a, const char* name, py::ssize_t n) {
  if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1 || (n >= 0 && a.shape(0) != n) ||
      (a.shape(0) > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(T))))
    throw std::invalid_argument(std::string(name) + ": expected a contiguous 1-D " +
                                py::str(py::dtype::of<T>()).cast<std::string>() + " array" +
                                (n >= 0 ? " of length " + std::to_string(n) : std::string()));
  return static_cast<const T*>(a.data());
}

std::string_view bytes_view(const py::bytes& b) {
  char* p = nullptr;
  Py_ssize_t n = 0;
  if (PyBytes_AsStringAndSize(b.ptr(), &p, &n) != 0) throw py::error_already_set();
  return {p, static_cast<std::size_t>(n)};
}

py::array take_events(OrderBook& b) {
  const auto& ev = b.events();
  py::array out(event_dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(ev.size())});
  if (!ev.empty()) std::memcpy(out.mutable_data(), ev.data(), ev.size() * sizeof(book::Event));
  b.clear_events();
  return out;
}

py::tuple levels_of(const OrderBook& b, int side, std::size_t n) {
  const Side s = book::to_side(side);
  const std::size_t m = std::min(n, b.level_count(s));
  py::array_t<std::int64_t> px(static_cast<py::ssize_t>(m)), sz(static_cast<py::ssize_t>(m));
  py::array_t<std::uint32_t> cnt(static_cast<py::ssize_t>(m));
  b.levels(s, m, px.mutable_data(), sz.mutable_data(), cnt.mutable_data());
  return py::make_tuple(px, sz, cnt);
}

}  // namespace

void bind_book(py::module_& m) {
  m.attr("BOOK_EVENT_DTYPE") = event_dtype();
  m.attr("LOBSTER_EMPTY_ASK") = book::lobster::kEmptyAsk;
  m.attr("LOBSTER_EMPTY_BID") = book::lobster::kEmptyBid;
  m.def(
      "reject_reason_name",
      [](int r) {
        return std::string(book::reject_reason_name(static_cast<book::RejectReason>(r)));
      },
      py::arg("reason"));
  m.def("feature_names", [] {
    py::list names;
    for (std::size_t k = 0; k < book::kFeatureCount; ++k)
      names.append(book::feature_name(static_cast<book::Feature>(k)));
    return names;
  });

  py::class_<OrderBook>(m, "OrderBook", "Order-by-order (L3) book with price-time matching.")
      .def(py::init<std::size_t>(), py::arg("expected_orders") = 1024)
      .def(
          "submit",
          [](OrderBook& b, std::uint64_t id, int side, int type, std::int64_t price,
             std::int64_t size, std::int64_t ts) {
            b.submit(id, book::to_side(side), book::to_order_type(type), price, size, ts);
          },
          py::arg("order_id"), py::arg("side"), py::arg("order_type"), py::arg("price"),
          py::arg("size"), py::arg("ts"))
      .def("cancel", &OrderBook::cancel, py::arg("order_id"), py::arg("ts"))
      .def("reduce", &OrderBook::reduce, py::arg("order_id"), py::arg("by"), py::arg("ts"))
      .def("replace", &OrderBook::replace, py::arg("order_id"), py::arg("price"), py::arg("size"),
           py::arg("ts"))
      .def(
          "insert",
          [](OrderBook& b, std::uint64_t id, int side, std::int64_t price, std::int64_t size,
             std::int64_t ts) { return b.insert(id, book::to_side(side), price, size, ts); },
          py::arg("order_id"), py::arg("side"), py::arg("price"), py::arg("size"), py::arg("ts"))
      .def("execute", &OrderBook::execute, py::arg("order_id"), py::arg("size"), py::arg("ts"))
      .def(
          "add_level_size",
          [](OrderBook& b, int side, std::int64_t price, std::int64_t qty, std::int64_t ts) {
            return b.add_level_size(book::to_side(side), price, qty, ts);
          },
          py::arg("side"), py::arg("price"), py::arg("size"), py::arg("ts") = 0)
      .def(
          "remove_level_size",
          [](OrderBook& b, int side, std::int64_t price, std::int64_t qty, std::int64_t ts) {
            return b.remove_level_size(book::to_side(side), price, qty, ts);
          },
          py::arg("side"), py::arg("price"), py::arg("size"), py::arg("ts") = 0)
      .def("take_events", &take_events, "The buffered events as a structured array; clears them.")
      .def(
          "best",
          [](const OrderBook& b, int side) -> py::object {
            std::int64_t p = 0, q = 0;
            if (!b.best(book::to_side(side), p, q)) return py::none();
            return py::make_tuple(p, q);
          },
          py::arg("side"))
      .def(
          "level_count",
          [](const OrderBook& b, int side) { return b.level_count(book::to_side(side)); },
          py::arg("side"))
      .def(
          "level_size",
          [](const OrderBook& b, int side, std::int64_t price) {
            return b.level_size(book::to_side(side), price);
          },
          py::arg("side"), py::arg("price"))
      .def("levels", &levels_of, py::arg("side"), py::arg("depth"))
      .def(
          "snapshot_into",
          [](const OrderBook& b, const py::array& bp, const py::array& bs, const py::array& ap,
             const py::array& as) {
            const py::ssize_t n = bp.ndim() == 1 ? bp.shape(0) : -1;
            auto* a = out_ptr<std::int64_t>(bp, "bid_price", n);
            auto* c = out_ptr<std::int64_t>(bs, "bid_size", n);
            auto* d = out_ptr<std::int64_t>(ap, "ask_price", n);
            auto* e = out_ptr<std::int64_t>(as, "ask_size", n);
            std::size_t nb = 0, na = 0;
            b.snapshot(static_cast<std::size_t>(n), a, c, d, e, nb, na);
            return py::make_tuple(nb, na);
          },
          py::arg("bid_price"), py::arg("bid_size"), py::arg("ask_price"), py::arg("ask_size"))
      .def(
          "find",
          [](const OrderBook& b, std::uint64_t id) -> py::object {
            book::OrderInfo o;
            if (!b.find(id, o)) return py::none();
            return py::make_tuple(static_cast<int>(o.side), o.price, o.size, o.ts);
          },
          py::arg("order_id"))
      .def(
          "level_queue",
          [](const OrderBook& b, int side, std::int64_t price) {
            const book::Side s = book::to_side(side);
            std::int64_t anon = 0;
            const std::size_t count = b.level_queue(s, price, 0, nullptr, nullptr, anon);
            py::array_t<std::uint64_t> ids(static_cast<py::ssize_t>(count));
            py::array_t<std::int64_t> sizes(static_cast<py::ssize_t>(count));
            b.level_queue(s, price, count, ids.mutable_data(), sizes.mutable_data(), anon);
            return py::make_tuple(anon, ids, sizes);
          },
          py::arg("side"), py::arg("price"),
          "(anonymous quantity, ids, sizes) of one level's queue, front first.")
      .def("order_count", &OrderBook::order_count)
      .def("check_invariants", &OrderBook::check_invariants)
      .def_property("record_events", &OrderBook::record_events, &OrderBook::set_record_events)
      .def("clear", &OrderBook::clear)
      .def(
          "apply_batch",
          [](OrderBook& b, const py::array& kind, const py::array& id, const py::array& side,
             const py::array& price, const py::array& size, const py::array& ts) {
            book::OpBatch ops;
            const py::ssize_t n = kind.ndim() == 1 ? kind.shape(0) : -1;
            ops.kind = in_ptr<std::uint8_t>(kind, "kind", n);
            ops.id = in_ptr<std::uint64_t>(id, "order_id", n);
            ops.side = in_ptr<std::int8_t>(side, "side", n);
            ops.price = in_ptr<std::int64_t>(price, "price", n);
            ops.size = in_ptr<std::int64_t>(size, "size", n);
            ops.ts = in_ptr<std::int64_t>(ts, "ts", n);
            ops.n = static_cast<std::size_t>(n);
            py::gil_scoped_release release;
            b.apply(ops);
          },
          py::arg("kind"), py::arg("order_id"), py::arg("side"), py::arg("price"), py::arg("size"),
          py::arg("ts"));

  py::class_<book::SyntheticFlow>(m, "SyntheticFlow",
                                  "Synthetic order flow driving an OrderBook (LOBSTER messages).")
      .def(py::init([](OrderBook& b, std::uint64_t seed, std::uint64_t stream, double rate,
                       std::int64_t start_ns, std::int64_t mid, std::int64_t tick, double drift) {
             return std::make_unique<book::SyntheticFlow>(
                 b, book::SyntheticConfig{seed, stream, rate, start_ns, mid, tick, drift});
           }),
           py::arg("book"), py::arg("seed"), py::arg("stream"), py::arg("rate"),
           py::arg("start_ns"), py::arg("mid"), py::arg("tick"), py::arg("drift"),
           py::keep_alive<1, 2>())
      .def(
          "next",
          [](book::SyntheticFlow& f, std::size_t ops) {
            const book::SyntheticMessages* m = nullptr;
            {
              py::gil_scoped_release release;
              m = &f.next(ops);
            }
            auto col = [](const auto& v) {
              using T = typename std::decay_t<decltype(v)>::value_type;
              py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
              if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
              return a;
            };
            return py::make_tuple(col(m->ts), col(m->type), col(m->order_id), col(m->side),
                                  col(m->price), col(m->size));
          },
          py::arg("ops"),
          "Runs `ops` operations (GIL released); (ts, type, order_id, side, price, size).")
      .def_property_readonly("operations", &book::SyntheticFlow::operations)
      .def_property_readonly("pressure", &book::SyntheticFlow::pressure);

  py::class_<book::FeatureEngine>(m, "FeatureEngine", "Incremental microstructure features.")
      .def(py::init([](std::size_t depth, std::int64_t bucket, std::size_t buckets,
                       std::size_t trade_window, std::size_t rv_window) {
             return book::FeatureEngine(
                 book::FeatureConfig{depth, bucket, buckets, trade_window, rv_window});
           }),
           py::arg("depth") = 5, py::arg("vpin_bucket_volume") = 1000, py::arg("vpin_buckets") = 50,
           py::arg("trade_window") = 100, py::arg("rv_window") = 100)
      .def(
          "update",
          [](book::FeatureEngine& f, const OrderBook& b) {
            f.update(b, b.events().data(), b.events().size());
          },
          py::arg("book"), "Trades among the book's buffered events, then the book state.")
      .def("on_book", &book::FeatureEngine::on_book, py::arg("book"))
      .def("on_trade", &book::FeatureEngine::on_trade, py::arg("sign"), py::arg("size"))
      .def("current",
           [](const book::FeatureEngine& f) {
             py::array_t<double> out(static_cast<py::ssize_t>(book::kFeatureCount));
             std::memcpy(out.mutable_data(), f.current().v, sizeof(f.current().v));
             return out;
           })
      .def("reset", &book::FeatureEngine::reset);

  m.def(
      "lobster_count_fields",
      [](const py::bytes& data) { return book::lobster::count_fields(bytes_view(data)); },
      py::arg("data"));
  m.def(
      "lobster_parse_messages",
      [](const py::bytes& data) {
        const std::string_view text = bytes_view(data);
        std::size_t n;
        {
          py::gil_scoped_release release;
          n = book::lobster::count_rows(text);
        }
        const auto sn = static_cast<py::ssize_t>(n);
        py::array_t<std::int64_t> time(sn), id(sn), size(sn), price(sn);
        py::array_t<std::int8_t> type(sn), dir(sn);
        book::lobster::MessageColumns cols{time.mutable_data(),  type.mutable_data(),
                                           id.mutable_data(),    size.mutable_data(),
                                           price.mutable_data(), dir.mutable_data()};
        {
          py::gil_scoped_release release;
          book::lobster::parse_messages(text, n, cols);
        }
        py::dict out;
        out["time"] = time;
        out["type"] = type;
        out["order_id"] = id;
        out["size"] = size;
        out["price"] = price;
        out["direction"] = dir;
        return out;
      },
      py::arg("data"), "Message file bytes -> dict of column arrays (time in ns after midnight).");
  m.def(
      "lobster_parse_book",
      [](const py::bytes& data, std::size_t levels) {
        if (levels == 0) throw std::invalid_argument("levels must be >= 1");
        const std::string_view text = bytes_view(data);
        std::size_t n;
        {
          py::gil_scoped_release release;
          n = book::lobster::count_rows(text);
        }
        py::array_t<std::int64_t> out(
            {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(4 * levels)});
        std::int64_t* p = out.mutable_data();
        {
          py::gil_scoped_release release;
          book::lobster::parse_book(text, n, levels, p);
        }
        return out;
      },
      py::arg("data"), py::arg("levels"));
  m.def(
      "lobster_replay",
      [](const py::array& time, const py::array& type, const py::array& id, const py::array& size,
         const py::array& price, const py::array& direction, const py::array& rows,
         std::size_t levels, OrderBook& b, bool status, book::FeatureEngine* features) {
        if (levels == 0) throw std::invalid_argument("levels must be >= 1");
        book::lobster::Messages msg;
        const py::ssize_t n = type.ndim() == 1 ? type.shape(0) : -1;
        msg.n = static_cast<std::size_t>(n);
        msg.time = in_ptr<std::int64_t>(time, "time", n);
        msg.type = in_ptr<std::int8_t>(type, "type", n);
        msg.id = in_ptr<std::int64_t>(id, "order_id", n);
        msg.size = in_ptr<std::int64_t>(size, "size", n);
        msg.price = in_ptr<std::int64_t>(price, "price", n);
        msg.direction = in_ptr<std::int8_t>(direction, "direction", n);
        if (!py::isinstance<py::array_t<std::int64_t>>(rows) || rows.ndim() != 2 ||
            rows.shape(0) != n || rows.shape(1) != static_cast<py::ssize_t>(4 * levels) ||
            !(rows.flags() & py::array::c_style))
          throw std::invalid_argument("book rows: expected a C-contiguous int64 array of shape (" +
                                      std::to_string(n) + ", " + std::to_string(4 * levels) + ")");
        const auto* rp = static_cast<const std::int64_t*>(rows.data());
        py::object st = py::none(), fo = py::none();
        std::uint8_t* stp = nullptr;
        double* fop = nullptr;
        if (status) {
          py::array_t<std::uint8_t> a(n);
          stp = a.mutable_data();
          st = a;
        }
        if (features) {
          py::array_t<double> a({n, static_cast<py::ssize_t>(book::kFeatureCount)});
          fop = a.mutable_data();
          fo = a;
        }
        book::lobster::ReplayResult r;
        {
          py::gil_scoped_release release;
          r = book::lobster::replay(msg, rp, levels, b, stp, features, fop);
        }
        py::dict res;
        res["messages"] = r.messages;
        res["rows_checked"] = r.rows_checked;
        res["rows_exact"] = r.rows_exact;
        res["rows_edge"] = r.rows_edge;
        res["rows_bad"] = r.rows_bad;
        res["first_bad_row"] = r.first_bad_row == static_cast<std::size_t>(-1)
                                   ? py::object(py::none())
                                   : py::object(py::int_(r.first_bad_row));
        res["trades"] = r.trades;
        res["halts"] = r.halts;
        return py::make_tuple(res, st, fo);
      },
      py::arg("time"), py::arg("type"), py::arg("order_id"), py::arg("size"), py::arg("price"),
      py::arg("direction"), py::arg("book_rows"), py::arg("levels"), py::arg("book"),
      py::arg("status") = false, py::arg("features") = nullptr);
}

}  // namespace tradecore::bindings
