#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "batch.hpp"
#include "common.hpp"
#include "output_pool.hpp"
#include "tradecore/cuda.hpp"
#include "tradecore/pricing/european.hpp"
#include "tradecore/pricing/implied_vol.hpp"

namespace tradecore::bindings {

namespace {

// In EuropeanColumn order.
constexpr std::array<const char*, pricing::kNumEuropeanColumns> kEuropeanOutputs = {
    "price", "delta", "gamma", "vega",  "theta",  "rho",  "phi",        "vanna",      "charm",
    "vomma", "speed", "color", "zomma", "ultima", "veta", "dual_delta", "dual_gamma", "elasticity"};

pricing::Model parse_model(const std::string& model) {
  if (model == "bsm") return pricing::Model::Bsm;
  if (model == "black76") return pricing::Model::Black76;
  throw std::invalid_argument("model must be 'bsm' or 'black76' (got '" + model + "')");
}

// The output columns of EuropeanOut from slots in EuropeanColumn order (null: not computed).
void set_columns(pricing::EuropeanOut& out, double* const* slots) {
  out.price = slots[0];
  out.delta = slots[1];
  out.gamma = slots[2];
  out.vega = slots[3];
  out.theta = slots[4];
  out.rho = slots[5];
  out.phi = slots[6];
  out.vanna = slots[7];
  out.charm = slots[8];
  out.vomma = slots[9];
  out.speed = slots[10];
  out.color = slots[11];
  out.zomma = slots[12];
  out.ultima = slots[13];
  out.veta = slots[14];
  out.dual_delta = slots[15];
  out.dual_gamma = slots[16];
  out.elasticity = slots[17];
}

}  // namespace

void bind_pricing(py::module_& m) {
  m.def(
      "output_pool_kept_bytes", [] { return OutputPool::instance().kept_bytes(); },
      "Bytes of freed output blocks the pool keeps for the next large batch.");
  // The pricing domain (tradecore/pricing/european.hpp): inside it every output is finite.
  py::dict domain;
  domain["spot_min"] = pricing::kMinSpot;
  domain["spot_max"] = pricing::kMaxSpot;
  domain["strike_min"] = pricing::kMinStrike;
  domain["strike_max"] = pricing::kMaxStrike;
  domain["expiry_min"] = pricing::kMinExpiry;
  domain["expiry_max"] = pricing::kMaxExpiry;
  domain["rate_max_abs"] = pricing::kMaxAbsRate;
  domain["vol_min"] = pricing::kMinVol;
  domain["vol_max"] = pricing::kMaxVol;
  m.attr("PRICING_DOMAIN") = domain;
  m.def(
      "european_check",
      [](const py::array& S, const py::array& K, const py::array& T, const py::array& r,
         const py::array& q, const py::array& sigma, const py::array& type) -> py::object {
        const auto b = european_batch(S, K, T, r, q, sigma, type);
        pricing::Invalid bad{};
        bool ok;
        {
          ReleaseGilFor release(b.n);
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
         const py::object& out_arrays, const std::string& model) {
        const auto b = european_batch(S, K, T, r, q, sigma, type, parse_model(model));
        pricing::EuropeanOut out;
        double* slots[pricing::kNumEuropeanColumns] = {};
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
          py::array_t<double> a = output_array(static_cast<py::ssize_t>(b.n));
          slots[k] = a.mutable_data();
          result[kEuropeanOutputs[k]] = a;
        }
        set_columns(out, slots);
        {
          ReleaseGilFor release(b.n);
          if (gpu) {
            cuda::european(b, out);
          } else if (checked) {
            pricing::european(b, out, threads);
          } else {
            pricing::european_unchecked(b, out, threads);
          }
        }
        return result;
      },
      py::arg("S"), py::arg("K"), py::arg("T"), py::arg("r"), py::arg("q"), py::arg("sigma"),
      py::arg("option_type"), py::arg("outputs"), py::arg("gpu") = false, py::arg("threads") = 0,
      py::arg("checked") = true, py::arg("out") = py::none(), py::arg("model") = "bsm",
      "European price and Greeks (BSM or Black-76) over 1-D arrays (see "
      "tradecore.pricing.european).");

  m.def(
      "european_row",
      [](double S, double K, double T, double r, double q, double sigma, int option_type,
         std::uint32_t columns, const std::string& model) {
        // One row through the batch kernel (a batch of one, as european() runs it), without
        // numpy arrays: the outputs whose bit is set in `columns` (bit k: EuropeanColumn k),
        // as a tuple in column order.
        if (option_type != 1 && option_type != -1)
          throw std::invalid_argument("option_type must be +1 (call) or -1 (put)");
        if (columns >> pricing::kNumEuropeanColumns)
          throw std::invalid_argument("columns: bit beyond the last output");
        const auto type = static_cast<std::int8_t>(option_type);
        pricing::EuropeanBatch b;
        b.spot = In<double>{&S, 0};
        b.strike = In<double>{&K, 0};
        b.expiry = In<double>{&T, 0};
        b.rate = In<double>{&r, 0};
        b.dividend = In<double>{&q, 0};
        b.vol = In<double>{&sigma, 0};
        b.type = In<std::int8_t>{&type, 0};
        b.n = 1;
        b.model = parse_model(model);
        double values[pricing::kNumEuropeanColumns] = {};
        double* slots[pricing::kNumEuropeanColumns] = {};
        std::size_t count = 0;
        for (std::size_t k = 0; k < pricing::kNumEuropeanColumns; ++k) {
          if (columns >> k & 1U) {
            slots[k] = &values[k];
            ++count;
          }
        }
        pricing::EuropeanOut out;
        set_columns(out, slots);
        pricing::european(b, out, 1);
        py::tuple result(count);
        std::size_t i = 0;
        for (std::size_t k = 0; k < pricing::kNumEuropeanColumns; ++k) {
          if (slots[k]) result[i++] = py::float_(values[k]);
        }
        return result;
      },
      py::arg("S"), py::arg("K"), py::arg("T"), py::arg("r"), py::arg("q"), py::arg("sigma"),
      py::arg("option_type"), py::arg("columns"), py::arg("model") = "bsm",
      "One European row (scalars in, a tuple of the selected outputs out); see "
      "tradecore.pricing.european_row.");

  m.def(
      "implied_vol",
      [](const py::array& price, const py::array& S, const py::array& K, const py::array& T,
         const py::array& r, const py::array& q, const py::array& type, const std::string& model,
         bool gpu, int threads) {
        const py::ssize_t n = type.ndim() == 1 ? type.shape(0) : -1;
        pricing::ImpliedVolBatch b;
        b.type = view<std::int8_t>(type, "option_type", n);
        b.price = view<double>(price, "price", n);
        b.spot = view<double>(S, "spot", n);
        b.strike = view<double>(K, "strike", n);
        b.expiry = view<double>(T, "expiry", n);
        b.rate = view<double>(r, "rate", n);
        b.dividend = view<double>(q, "dividend", n);
        b.n = static_cast<std::size_t>(n);
        b.model = parse_model(model);
        py::array_t<double> vol = output_array(n);
        py::array_t<std::int8_t> status(n);
        pricing::ImpliedVolCounts c;
        {
          ReleaseGilFor release(b.n);
          c = gpu ? cuda::implied_vol(b, vol.mutable_data(), status.mutable_data())
                  : pricing::implied_vol(b, vol.mutable_data(), status.mutable_data(), threads);
        }
        py::dict counts;
        counts["ok"] = c.ok;
        counts["below_intrinsic"] = c.below_intrinsic;
        counts["above_upper"] = c.above_upper;
        counts["non_positive"] = c.non_positive;
        counts["invalid_input"] = c.invalid_input;
        return py::make_tuple(vol, status, counts);
      },
      py::arg("price"), py::arg("S"), py::arg("K"), py::arg("T"), py::arg("r"), py::arg("q"),
      py::arg("option_type"), py::arg("model") = "bsm", py::arg("gpu") = false,
      py::arg("threads") = 0,
      "Implied volatilities over 1-D arrays: (vol, status, counts) (see "
      "tradecore.pricing.implied_vol).");

  m.def(
      "normalised_black",
      [](double x, double s) {
        if (!(s > 0.0)) throw std::invalid_argument("s must be > 0");
        return pricing::normalised_black(x, s);
      },
      py::arg("x"), py::arg("s"),
      "Normalised Black call e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2) (x = ln F/K, "
      "s = sigma sqrt T), computed without cancellation.");

  m.def(
      "normalised_implied_vol",
      [](double beta, double x) {
        if (!(x <= 0.0) || !(beta > 0.0) || !(beta < std::exp(0.5 * x)))
          throw std::invalid_argument("need x <= 0 and 0 < beta < exp(x/2)");
        int iterations = 0;
        const double s = pricing::normalised_implied_vol(beta, x, &iterations);
        return py::make_tuple(s, iterations);
      },
      py::arg("beta"), py::arg("x"),
      "The s with normalised_black(x, s) == beta for x <= 0, and the iterations it took.");
}

}  // namespace tradecore::bindings
