#include "tradecore/book/lobster.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace tradecore::book::lobster {

namespace {

// A cursor over one line of comma-separated integers.
struct Line {
  const char* p;
  const char* end;
  std::size_t number;  // 1-based line number in the file
  const char* what;    // "message" or "orderbook"

  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument(std::string(what) + " file line " + std::to_string(number) + ": " +
                                why);
  }
  void comma(const char* field) {
    if (p >= end || *p != ',') fail(std::string("expected ',' after ") + field);
    ++p;
  }
  std::int64_t integer(const char* field) {
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    if (p >= end || *p < '0' || *p > '9')
      fail(std::string("field '") + field + "' is not an integer");
    std::int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      v = v * 10 + (*p++ - '0');
      if (++digits > 18) fail(std::string("field '") + field + "' is out of range");
    }
    return neg ? -v : v;
  }
  // Seconds with up to 9 decimals as nanoseconds (further digits are truncated).
  std::int64_t seconds_ns() {
    if (p >= end || *p < '0' || *p > '9') fail("field 'time' is not a number of seconds");
    std::int64_t s = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      s = s * 10 + (*p++ - '0');
      if (++digits > 9) fail("field 'time' is out of range");
    }
    std::int64_t frac = 0;
    int fd = 0;
    if (p < end && *p == '.') {
      ++p;
      while (p < end && *p >= '0' && *p <= '9') {
        if (fd < 9) {
          frac = frac * 10 + (*p - '0');
          ++fd;
        }
        ++p;
      }
    }
    for (; fd < 9; ++fd) frac *= 10;
    return s * 1000000000LL + frac;
  }
  void done() {
    if (p < end) fail("unexpected trailing characters");
  }
};

// Calls f(line) for each non-empty line; returns the number of lines seen.
template <class F>
std::size_t for_lines(std::string_view text, const char* what, std::size_t limit, F&& f) {
  const char* p = text.data();
  const char* const end = p + text.size();
  std::size_t number = 0, rows = 0;
  while (p < end && rows < limit) {
    const char* nl =
        static_cast<const char*>(__builtin_memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* le = nl ? nl : end;
    ++number;
    const char* e = le;
    if (e > p && e[-1] == '\r') --e;
    if (e > p) {
      Line line{p, e, number, what};
      f(line, rows);
      ++rows;
    }
    p = nl ? nl + 1 : end;
  }
  return rows;
}

}  // namespace

std::size_t count_rows(std::string_view text) noexcept {
  std::size_t rows = 0;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char* nl =
        static_cast<const char*>(__builtin_memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* le = nl ? nl : end;
    const char* e = le;
    if (e > p && e[-1] == '\r') --e;
    if (e > p) ++rows;
    p = nl ? nl + 1 : end;
  }
  return rows;
}

std::size_t count_fields(std::string_view text) noexcept {
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end && (*p == '\n' || *p == '\r')) ++p;
  if (p == end) return 0;
  std::size_t fields = 1;
  while (p < end && *p != '\n' && *p != '\r') fields += *p++ == ',';
  return fields;
}

void parse_messages(std::string_view text, std::size_t rows, const MessageColumns& out) {
  std::int64_t last_time = 0;
  const std::size_t got = for_lines(text, "message", rows, [&](Line& l, std::size_t i) {
    const std::int64_t t = l.seconds_ns();
    l.comma("time");
    const std::int64_t type = l.integer("type");
    l.comma("type");
    const std::int64_t id = l.integer("order id");
    l.comma("order id");
    const std::int64_t size = l.integer("size");
    l.comma("size");
    const std::int64_t price = l.integer("price");
    l.comma("price");
    const std::int64_t dir = l.integer("direction");
    l.done();
    if (type < 1 || type > 7) l.fail("event type " + std::to_string(type) + " is not 1..7");
    if (dir != 1 && dir != -1) l.fail("direction " + std::to_string(dir) + " is not 1 or -1");
    if (size < 0) l.fail("negative size");
    if (type <= 4 && size == 0) l.fail("zero size for event type " + std::to_string(type));
    // Halts (7) carry -1 (halt), 0 (quoting resumes) or 1 (trading resumes) as the price;
    // every other event an order's or a trade's price.
    if (type == 7 ? (price < -1 || price > 1) : price <= 0)
      l.fail("field 'price' " + std::to_string(price) +
             (type == 7 ? " is not -1, 0 or 1 for a halt (type 7)" : " is not > 0"));
    if (t < last_time)
      l.fail("field 'time' goes backwards (" + std::to_string(t) + " ns after midnight, the line " +
             "before " + std::to_string(last_time) + ")");
    last_time = t;
    out.time[i] = t;
    out.type[i] = static_cast<std::int8_t>(type);
    out.id[i] = id;
    out.size[i] = size;
    out.price[i] = price;
    out.direction[i] = static_cast<std::int8_t>(dir);
  });
  if (got != rows)
    throw std::invalid_argument("message file: expected " + std::to_string(rows) + " rows, found " +
                                std::to_string(got));
}

void parse_book(std::string_view text, std::size_t rows, std::size_t levels, std::int64_t* out) {
  if (levels == 0) throw std::invalid_argument("orderbook: levels must be >= 1");
  const std::size_t w = 4 * levels;
  const std::size_t got = for_lines(text, "orderbook", rows, [&](Line& l, std::size_t i) {
    std::int64_t* row = out + i * w;
    for (std::size_t k = 0; k < w; ++k) {
      if (k) {
        if (l.p >= l.end)
          l.fail("expected " + std::to_string(w) + " fields (" + std::to_string(levels) +
                 " levels), found " + std::to_string(k));
        l.comma("a price/size field");
      }
      row[k] = l.integer((k % 2) ? "size" : "price");
    }
    if (l.p < l.end)
      l.fail("more than " + std::to_string(w) + " fields (" + std::to_string(levels) + " levels)");
    for (std::size_t k = 0; k < w; k += 2)
      if (row[k + 1] < 0) l.fail("negative size");
    // Real levels (not the empty-level sentinels): positive prices, asks rising and bids
    // falling away from the touch, and the best ask above the best bid (a crossed or locked
    // book cannot rest on one exchange).
    for (std::size_t k = 0; k < levels; ++k) {
      const std::int64_t ask = row[4 * k], bid = row[4 * k + 2];
      const std::string n = std::to_string(k + 1);
      if (ask != kEmptyAsk) {
        if (ask <= 0) l.fail("field 'ask price " + n + "' " + std::to_string(ask) + " is not > 0");
        if (k && row[4 * (k - 1)] != kEmptyAsk && ask <= row[4 * (k - 1)])
          l.fail("field 'ask price " + n + "' " + std::to_string(ask) + " is not above ask price " +
                 std::to_string(k));
      }
      if (bid != kEmptyBid) {
        if (bid <= 0) l.fail("field 'bid price " + n + "' " + std::to_string(bid) + " is not > 0");
        if (k && row[4 * (k - 1) + 2] != kEmptyBid && bid >= row[4 * (k - 1) + 2])
          l.fail("field 'bid price " + n + "' " + std::to_string(bid) + " is not below bid price " +
                 std::to_string(k));
      }
    }
    if (row[0] != kEmptyAsk && row[2] != kEmptyBid && row[0] <= row[2])
      l.fail("crossed book: field 'ask price 1' " + std::to_string(row[0]) +
             " is not above 'bid price 1' " + std::to_string(row[2]));
  });
  if (got != rows)
    throw std::invalid_argument("orderbook file: expected " + std::to_string(rows) +
                                " rows, found " + std::to_string(got));
}

// ------------------------------------------------------------------ replay

namespace {

inline Side side_of(std::int8_t d) noexcept { return d > 0 ? Side::Buy : Side::Sell; }
inline bool real_level(std::int64_t p, std::int64_t s) noexcept {
  return s > 0 && p != kEmptyAsk && p != kEmptyBid;
}
// a is at or inside b on this side (better or equal price)
inline bool at_or_inside(Side s, Price a, Price b) noexcept {
  return s == Side::Buy ? a >= b : a <= b;
}

struct SideRow {
  std::vector<Price> px;
  std::vector<Qty> sz;
  std::size_t n = 0;
};

// The real levels of one side of an orderbook row (offset 0: asks, 2: bids).
inline void file_side(const std::int64_t* row, std::size_t levels, int off, SideRow& out) {
  std::size_t n = 0;
  for (std::size_t k = 0; k < levels; ++k) {
    const std::int64_t p = row[4 * k + off], s = row[4 * k + off + 1];
    if (!real_level(p, s)) break;
    out.px[n] = p;
    out.sz[n] = s;
    ++n;
  }
  out.n = n;
}

class Replayer {
 public:
  Replayer(OrderBook& book, std::size_t levels) : book_(book), L_(levels) {
    for (SideRow* r : {&file_[0], &file_[1], &ours_[0], &ours_[1]}) {
      r->px.assign(levels, 0);
      r->sz.assign(levels, 0);
    }
  }

  void load(const std::int64_t* row) {
    for (int s = 0; s < 2; ++s) {
      const Side side = s == 0 ? Side::Sell : Side::Buy;
      for (std::size_t k = 0; k < L_; ++k) {
        const std::int64_t p = row[4 * k + 2 * s], q = row[4 * k + 2 * s + 1];
        if (real_level(p, q)) book_.add_level_size(side, p, q);
      }
    }
  }

  // Compares the book with `row` (prev: the row before), re-synchronises the visible levels.
  RowStatus check(const std::int64_t* row, const std::int64_t* prev) {
    RowStatus st = RowStatus::Exact;
    for (int s = 0; s < 2; ++s) {
      const Side side = s == 0 ? Side::Sell : Side::Buy;
      SideRow& f = file_[s];
      SideRow& o = ours_[s];
      file_side(row, L_, 2 * s, f);
      o.n = book_.levels(side, L_, o.px.data(), o.sz.data());
      if (same(f, o)) continue;
      // Levels strictly beyond the previous row's deepest recorded level are unknown territory.
      const std::int64_t pp = prev[4 * (L_ - 1) + 2 * s], pq = prev[4 * (L_ - 1) + 2 * s + 1];
      RowStatus side_st = RowStatus::Bad;
      if (real_level(pp, pq) && same_within(side, f, o, pp)) side_st = RowStatus::Edge;
      if (side_st > st) st = side_st;
    }
    if (st != RowStatus::Exact) sync();
    return st;
  }

 private:
  static bool same(const SideRow& a, const SideRow& b) noexcept {
    if (a.n != b.n) return false;
    for (std::size_t k = 0; k < a.n; ++k)
      if (a.px[k] != b.px[k] || a.sz[k] != b.sz[k]) return false;
    return true;
  }
  static bool same_within(Side side, const SideRow& a, const SideRow& b, Price bound) noexcept {
    std::size_t na = 0, nb = 0;
    while (na < a.n && at_or_inside(side, a.px[na], bound)) ++na;
    while (nb < b.n && at_or_inside(side, b.px[nb], bound)) ++nb;
    if (na != nb) return false;
    for (std::size_t k = 0; k < na; ++k)
      if (a.px[k] != b.px[k] || a.sz[k] != b.sz[k]) return false;
    return true;
  }
  static bool in_file(const SideRow& f, Price p) noexcept {
    for (std::size_t k = 0; k < f.n; ++k)
      if (f.px[k] == p) return true;
    return false;
  }
  // Makes the book's visible range equal to file_ (already filled by check()).
  void sync() {
    for (int s = 0; s < 2; ++s) {  // drop our visible levels the file does not have
      const Side side = s == 0 ? Side::Sell : Side::Buy;
      const SideRow& f = file_[s];
      SideRow& o = ours_[s];
      const bool bounded = f.n == L_;
      for (;;) {
        o.n = book_.levels(side, L_, o.px.data(), o.sz.data());
        std::size_t k = 0;
        while (k < o.n &&
               (in_file(f, o.px[k]) || (bounded && !at_or_inside(side, o.px[k], f.px[L_ - 1]))))
          ++k;
        if (k == o.n) break;
        book_.remove_level_size(side, o.px[k], o.sz[k]);
      }
    }
    for (int s = 0; s < 2; ++s) {  // set the sizes of the file's levels
      const Side side = s == 0 ? Side::Sell : Side::Buy;
      const SideRow& f = file_[s];
      for (std::size_t k = 0; k < f.n; ++k) {
        const Qty have = book_.level_size(side, f.px[k]);
        if (have < f.sz[k])
          book_.add_level_size(side, f.px[k], f.sz[k] - have);
        else if (have > f.sz[k])
          book_.remove_level_size(side, f.px[k], have - f.sz[k]);
      }
    }
  }

  OrderBook& book_;
  std::size_t L_;
  SideRow file_[2], ours_[2];
};

// Applies one message to the book; returns false when the book could not take it as given.
inline bool apply(OrderBook& book, const Messages& m, std::size_t i) {
  const std::int8_t t = m.type[i];
  if (t > 4) return true;  // hidden/cross executions and halts leave the visible book as it is
  const Side side = side_of(m.direction[i]);
  const Price p = m.price[i];
  const Qty q = m.size[i];
  const OrderId id = static_cast<OrderId>(m.id[i]);
  const Timestamp ts = m.time[i];
  if (t == 1) {
    if (book.insert(id, side, p, q, ts)) return true;
    OrderInfo o;
    if (book.find(id, o)) {  // a reused id: keep the quantity at the level
      book.add_level_size(side, p, q, ts);
      return true;
    }
    return false;  // would cross
  }
  OrderInfo o;
  if (book.find(id, o) && o.price == p && o.side == side) {
    const Qty from = t == 3 ? o.size : (q < o.size ? q : o.size);
    book.execute(id, from, ts);
    // The file's size is what left the level; reconcile an order whose size we over/under-count.
    if (q > from)
      book.remove_level_size(side, p, q - from, ts);
    else if (q < from)
      book.add_level_size(side, p, from - q, ts);
    return true;
  }
  return book.remove_level_size(side, p, q, ts) == q;
}

}  // namespace

ReplayResult replay(const Messages& m, const std::int64_t* book_rows, std::size_t levels,
                    OrderBook& book, std::uint8_t* row_status, FeatureEngine* features,
                    double* features_out) {
  if (levels == 0) throw std::invalid_argument("replay: levels must be >= 1");
  ReplayResult r;
  r.messages = m.n;
  book.clear();
  const bool record = book.record_events();
  book.set_record_events(false);
  if (features) features->reset();
  if (m.n == 0) {
    book.set_record_events(record);
    return r;
  }
  const std::size_t w = 4 * levels;
  Replayer rp(book, levels);
  // The book before the first message: the first row with the first message undone.
  rp.load(book_rows);
  if (m.type[0] <= 4) {
    const Side side = side_of(m.direction[0]);
    if (m.type[0] == 1)
      book.remove_level_size(side, m.price[0], m.size[0]);
    else
      book.add_level_size(side, m.price[0], m.size[0]);
  }
  for (std::size_t i = 0; i < m.n; ++i) {
    const std::int8_t t = m.type[i];
    bool ok;
    try {
      ok = apply(book, m, i);
    } catch (const std::invalid_argument&) {
      ok = false;
    }
    if (t >= 4 && t <= 6) ++r.trades;
    if (t == 7) ++r.halts;
    const std::int64_t* row = book_rows + i * w;
    RowStatus st;
    try {
      st = rp.check(row, i ? row - w : row);
    } catch (const std::invalid_argument&) {
      st = RowStatus::Bad;
    }
    if (!ok) st = RowStatus::Bad;
    ++r.rows_checked;
    if (st == RowStatus::Exact)
      ++r.rows_exact;
    else if (st == RowStatus::Edge)
      ++r.rows_edge;
    else {
      ++r.rows_bad;
      if (r.first_bad_row == static_cast<std::size_t>(-1)) r.first_bad_row = i;
    }
    if (row_status) row_status[i] = static_cast<std::uint8_t>(st);
    if (features) {
      if (t == 4 || t == 5) features->on_trade(-m.direction[i], m.size[i]);
      features->on_book(book);
      if (features_out) {
        const FeatureRow& fr = features->current();
        for (std::size_t k = 0; k < kFeatureCount; ++k)
          features_out[i * kFeatureCount + k] = fr.v[k];
      }
    }
  }
  book.set_record_events(record);
  return r;
}

}  // namespace tradecore::book::lobster
