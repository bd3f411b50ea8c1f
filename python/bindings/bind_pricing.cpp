#include <array>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "common.hpp"
#include "tradecore/cuda.hpp"
#include "tradecore/pricing/european.hpp"

namespace tradecore::bindings {

namespace {

constexpr std::array<const char*, 7> kEuropeanOutputs = {"price", "delta", "gamma", "vega",
                                                         "theta", "rho",   "phi"};

pricing::EuropeanBatch european_batch(const py::array& S, const py::array& K, const py::array& T,
                                      const py::array& r, const py::array& q,
                                      const py::array& sigma, const py::array& type) {
  const py::ssize_t n = type.ndim() == 1 ? type.shape(0) : -1;
  pricing::EuropeanBatch b;
  b.type = view<std::int8_t>(type, "option_type", n);
  b.spot = view<double>(S, "spot", n);
  b.strike = view<double>(K, "strike", n);
  b.expiry = view<double>(T, "expiry", n);
  b.rate = view<double>(r, "rate", n);
  b.dividend = view<double>(q, "dividend", n);
  b.vol = view<double>(sigma, "volatility", n);
  b.n = static_cast<std::size_t>(n);
  return b;
}

}  // namespace

void bind_pricing(py::module_& m) {
  m.def(
      "european_check",
      [](const py::array& S, const py::array& K, const py::array& T, const py::array& r,
         const py::array& q, const py::array& sigma, const py::array& type) -> py::object {
        const auto b = european_batch(S, K, T, r, q, sigma, type);
        pricing::Invalid bad{};
        bool ok;
        {
          py::gil_scoped_release release;
          ok = pricing::check(b, bad);
        }
        if (ok) return py::none();
        return py::make_tuple(pricing::field_name(bad.field), bad.row, bad.value, bad.rule);
      },
      "First invalid input as (field, row, value, rule), or None. Inputs are 1-D arrays "
      "(float64; option_type int8 +1/-1) of one length.");

  m.def(
      "european",
      [](const py::array& S, const py::array& K, const py::array& T, const py::array& r,
         const py::array& q, const py::array& sigma, const py::array& type,
         const std::vector<std::string>& outputs, bool gpu, int threads, bool checked,
         const py::object& out_arrays) {
        const auto b = european_batch(S, K, T, r, q, sigma, type);
        pricing::EuropeanOut out;
        double* slots[7] = {};
        py::dict result;
        for (const auto& name : outputs) {
          std::size_t k = 0;
          while (k < kEuropeanOutputs.size() && name != kEuropeanOutputs[k]) ++k;
          if (k == kEuropeanOutputs.size())
            throw std::invalid_argument("unknown output '" + name + "'");
          if (slots[k]) continue;
          if (!out_arrays.is_none() && out_arrays.contains(py::str(name))) {
            // Caller-owned buffer (reused across calls): float64, 1-D, contiguous, writable.
            py::object given = out_arrays[py::str(name)];
            if (!py::isinstance<py::array_t<double>>(given))
              throw std::invalid_argument("out['" + name + "'] must be a float64 array");
            auto a = py::reinterpret_borrow<py::array>(given);
            if (a.ndim() != 1 || a.shape(0) != static_cast<py::ssize_t>(b.n) ||
                a.strides(0) != static_cast<py::ssize_t>(sizeof(double)) || !a.writeable())
              throw std::invalid_argument("out['" + name + "'] must be a writable contiguous " +
                                          "1-D array of length " + std::to_string(b.n));
            slots[k] = static_cast<double*>(a.mutable_data());
            result[kEuropeanOutputs[k]] = a;
            continue;
          }
          py::array_t<double> a(static_cast<py::ssize_t>(b.n));
          slots[k] = a.mutable_data();
          result[kEuropeanOutputs[k]] = a;
        }
        out.price = slots[0];
        out.delta = slots[1];
        out.gamma = slots[2];
        out.vega = slots[3];
        out.theta = slots[4];
        out.rho = slots[5];
        out.phi = slots[6];
        {
          py::gil_scoped_release release;
          if (gpu) {
            cuda::bsm_european(b, out);
          } else if (checked) {
            pricing::bsm_european(b, out, threads);
          } else {
            pricing::bsm_european_unchecked(b, out, threads);
          }
        }
        return result;
      },
      py::arg("S"), py::arg("K"), py::arg("T"), py::arg("r"), py::arg("q"), py::arg("sigma"),
      py::arg("option_type"), py::arg("outputs"), py::arg("gpu") = false, py::arg("threads") = 0,
      py::arg("checked") = true, py::arg("out") = py::none(),
      "Black-Scholes-Merton price and first-order Greeks over 1-D arrays (see "
      "tradecore.pricing.european).");
}

}  // namespace tradecore::bindings
