// The risk kernels' random stream (tradecore/risk/philox.hpp): the raw Philox block, for the
// known-answer tests, and batches of standard normals.
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "tradecore/cuda.hpp"
#include "tradecore/risk/montecarlo.hpp"
#include "tradecore/risk/normals.hpp"
#include "tradecore/risk/philox.hpp"

namespace tradecore::bindings {
namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// The data of a C-contiguous array of `size` elements (its name in the error otherwise).
template <class T>
const T* data_of(const CArray<T>& a, std::size_t size, const char* name) {
  if (static_cast<std::size_t>(a.size()) != size)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(size) +
                                " values, got " + std::to_string(a.size()));
  return a.data();
}

template <class T>
const T* optional_data(const std::optional<CArray<T>>& a, std::size_t size, const char* name) {
  return a ? data_of(*a, size, name) : nullptr;
}

py::array_t<double> stats_array(const std::vector<risk::TailStats>& t) {
  py::array_t<double> out({static_cast<py::ssize_t>(t.size()), py::ssize_t{4}});
  auto v = out.mutable_unchecked<2>();
  for (std::size_t r = 0; r < t.size(); ++r) {
    const auto i = static_cast<py::ssize_t>(r);
    v(i, 0) = t[r].var;
    v(i, 1) = t[r].es;
    v(i, 2) = t[r].var_stderr;
    v(i, 3) = t[r].es_stderr;
  }
  return out;
}

}  // namespace

void bind_risk(py::module_& m) {
  m.def(
      "philox4x32_10",
      [](const std::array<std::uint32_t, 4>& counter, const std::array<std::uint32_t, 2>& key) {
        const risk::PhiloxCounter out = risk::philox4x32_10(
            {{counter[0], counter[1], counter[2], counter[3]}}, {{key[0], key[1]}});
        return std::array<std::uint32_t, 4>{out.v[0], out.v[1], out.v[2], out.v[3]};
      },
      py::arg("counter"), py::arg("key"),
      "One Philox 4x32-10 block: four 32-bit counter words and two key words to four words.");

  m.def(
      "philox_normals",
      [](std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths, std::uint64_t factors,
         int threads, bool gpu) {
        risk::validate_normals(first_path, paths, factors);
        py::array_t<double> out(
            {static_cast<py::ssize_t>(paths), static_cast<py::ssize_t>(factors)});
        double* data = out.mutable_data();
        {
          const ReleaseGilFor release(static_cast<std::size_t>(paths * factors));
          if (gpu) {
            cuda::philox_normals(seed, first_path, paths, factors, data);
          } else {
            risk::philox_normals(seed, first_path, paths, factors, data, threads);
          }
        }
        return out;
      },
      py::arg("seed"), py::arg("first_path"), py::arg("paths"), py::arg("factors"),
      py::arg("threads") = 0, py::arg("gpu") = false,
      "Standard normals (paths, factors) float64, row i being path first_path + i, from the "
      "Philox stream keyed by seed, on the CPU (threads 0: the OpenMP default) or the GPU.");

  m.attr("MC_MAX_PATHS") = risk::kMcMaxPaths;
  m.attr("MC_MAX_LOSSES") = risk::kMcMaxLosses;
  m.attr("MC_MAX_DOF") = risk::kMcMaxDof;

  m.def(
      "monte_carlo",
      [](const CArray<double>& spot, const CArray<double>& vol, const CArray<double>& dividend,
         double rate, const CArray<double>& cholesky,
         const std::optional<CArray<double>>& vol_of_vol,
         const std::optional<CArray<double>>& spot_vol_corr, const CArray<std::int32_t>& underlying,
         const CArray<std::int8_t>& kind, const CArray<std::int8_t>& option_type,
         const CArray<double>& strike, const CArray<double>& expiry,
         const CArray<double>& value_now, const CArray<std::int64_t>& grid_offset,
         const CArray<std::int32_t>& grid_size, const CArray<double>& grid_x0,
         const CArray<double>& grid_dx, const CArray<std::int32_t>& grid_vsize,
         const CArray<double>& grid_y0, const CArray<double>& grid_dy,
         const CArray<double>& grid_values, const CArray<std::int32_t>& instrument,
         const CArray<std::int32_t>& portfolio, const CArray<double>& units, std::size_t portfolios,
         const CArray<double>& dg_delta, const CArray<double>& dg_gamma,
         const std::optional<CArray<double>>& dg_vega, const CArray<double>& dg_theta,
         double horizon, std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
         int student_t_dof, bool full, bool delta_gamma, double confidence, bool keep_losses,
         int threads, bool gpu) {
        const auto n = static_cast<std::size_t>(spot.size());
        const auto mi = static_cast<std::size_t>(underlying.size());
        const auto np_ = static_cast<std::size_t>(instrument.size());
        risk::McMarket mk;
        mk.n = n;
        mk.spot = spot.data();
        mk.vol = data_of(vol, n, "volatility");
        mk.dividend = data_of(dividend, n, "dividend_yield");
        mk.rate = rate;
        mk.cholesky = data_of(cholesky, n * n, "cholesky");
        mk.vol_of_vol = optional_data(vol_of_vol, n, "vol_of_vol");
        mk.spot_vol_corr = optional_data(spot_vol_corr, n, "spot_vol_correlation");
        risk::McInstruments in;
        in.m = mi;
        in.underlying = underlying.data();
        in.kind = data_of(kind, mi, "kind");
        in.type = data_of(option_type, mi, "option_type");
        in.strike = data_of(strike, mi, "strike");
        in.expiry = data_of(expiry, mi, "expiry");
        in.value_now = data_of(value_now, mi, "value_now");
        in.grid_offset = data_of(grid_offset, mi, "grid_offset");
        in.grid_size = data_of(grid_size, mi, "grid_size");
        in.grid_x0 = data_of(grid_x0, mi, "grid_x0");
        in.grid_dx = data_of(grid_dx, mi, "grid_dx");
        in.grid_vsize = data_of(grid_vsize, mi, "grid_vsize");
        in.grid_y0 = data_of(grid_y0, mi, "grid_y0");
        in.grid_dy = data_of(grid_dy, mi, "grid_dy");
        in.grid_values = grid_values.data();
        in.grid_total = static_cast<std::size_t>(grid_values.size());
        risk::McPositions pos;
        pos.count = np_;
        pos.portfolios = portfolios;
        pos.instrument = instrument.data();
        pos.portfolio = data_of(portfolio, np_, "portfolio");
        pos.units = data_of(units, np_, "units");
        pos.dg_delta = data_of(dg_delta, portfolios * n, "dg_delta");
        pos.dg_gamma = data_of(dg_gamma, portfolios * n, "dg_gamma");
        pos.dg_vega = optional_data(dg_vega, portfolios * n, "dg_vega");
        pos.dg_theta = data_of(dg_theta, portfolios, "dg_theta");
        risk::McConfig cfg;
        cfg.horizon = horizon;
        cfg.seed = seed;
        cfg.first_path = first_path;
        cfg.paths = paths;
        cfg.student_t_dof = student_t_dof;
        cfg.full = full;
        cfg.delta_gamma = delta_gamma;
        cfg.threads = threads;
        risk::validate_monte_carlo(mk, in, pos, cfg);
        if (!(confidence > 0.0 && confidence < 1.0))
          throw std::invalid_argument("confidence: must be in (0, 1)");
        const py::ssize_t rows = static_cast<py::ssize_t>(portfolios);
        const py::ssize_t cols = static_cast<py::ssize_t>(paths);
        py::array_t<double> lf = full ? py::array_t<double>({rows, cols}) : py::array_t<double>();
        py::array_t<double> ld =
            delta_gamma ? py::array_t<double>({rows, cols}) : py::array_t<double>();
        risk::McLosses out;
        out.full = full ? lf.mutable_data() : nullptr;
        out.delta_gamma = delta_gamma ? ld.mutable_data() : nullptr;
        std::vector<risk::TailStats> sf(full ? portfolios : 0), sd(delta_gamma ? portfolios : 0);
        {
          const py::gil_scoped_release release;
          if (gpu) {
            cuda::monte_carlo_losses(mk, in, pos, cfg, out);
          } else {
            risk::monte_carlo_losses(mk, in, pos, cfg, out);
          }
          if (full)
            risk::tail_stats_rows(out.full, portfolios, paths, confidence, sf.data(), threads);
          if (delta_gamma)
            risk::tail_stats_rows(out.delta_gamma, portfolios, paths, confidence, sd.data(),
                                  threads);
        }
        py::object none = py::none();
        return py::make_tuple(full && keep_losses ? py::object(lf) : none,
                              delta_gamma && keep_losses ? py::object(ld) : none,
                              full ? py::object(stats_array(sf)) : none,
                              delta_gamma ? py::object(stats_array(sd)) : none);
      },
      py::arg("spot"), py::arg("volatility"), py::arg("dividend_yield"), py::arg("rate"),
      py::arg("cholesky"), py::arg("vol_of_vol"), py::arg("spot_vol_correlation"),
      py::arg("underlying"), py::arg("kind"), py::arg("option_type"), py::arg("strike"),
      py::arg("expiry"), py::arg("value_now"), py::arg("grid_offset"), py::arg("grid_size"),
      py::arg("grid_x0"), py::arg("grid_dx"), py::arg("grid_vsize"), py::arg("grid_y0"),
      py::arg("grid_dy"), py::arg("grid_values"), py::arg("instrument"), py::arg("portfolio"),
      py::arg("units"), py::arg("portfolios"), py::arg("dg_delta"), py::arg("dg_gamma"),
      py::arg("dg_vega"), py::arg("dg_theta"), py::arg("horizon"), py::arg("seed"),
      py::arg("first_path"), py::arg("paths"), py::arg("student_t_dof"), py::arg("full"),
      py::arg("delta_gamma"), py::arg("confidence"), py::arg("keep_losses"), py::arg("threads") = 0,
      py::arg("gpu") = false,
      "Monte-Carlo losses (portfolios x paths, full revaluation and delta-gamma) and their "
      "VaR/ES/standard errors (portfolios x 4) at `confidence` (tradecore/risk/montecarlo.hpp). "
      "Returns (full_losses, dg_losses, full_stats, dg_stats), None where not requested.");
}

}  // namespace tradecore::bindings
