#include <string>

#include "common.hpp"
#include "tradecore/pricing/surface.hpp"

namespace tradecore::bindings {

namespace {

py::ssize_t length_of(const py::array& a, const char* name) {
  if (a.ndim() != 1) throw std::invalid_argument(std::string(name) + ": expected a 1-D array");
  return a.shape(0);
}

pricing::SliceModel slice_model(const std::string& name) {
  if (name == "svi") return pricing::SliceModel::Svi;
  if (name == "sabr") return pricing::SliceModel::Sabr;
  throw std::invalid_argument("model: must be 'svi' or 'sabr' (got '" + name + "')");
}

}  // namespace

void bind_surface(py::module_& m) {
  m.def(
      "svi_total_variance",
      [](const py::array& k, double a, double b, double rho, double mm, double sigma,
         int derivatives, int threads) -> py::tuple {
        if (derivatives < 0 || derivatives > 2)
          throw std::invalid_argument("derivatives: must be 0, 1 or 2");
        const py::ssize_t n = length_of(k, "k");
        const auto kv = view<double>(k, "k", n);
        py::array_t<double> w(n), dw(derivatives >= 1 ? n : 0), d2w(derivatives >= 2 ? n : 0);
        double* pw = w.mutable_data();
        double* pdw = derivatives >= 1 ? dw.mutable_data() : nullptr;
        double* pd2w = derivatives >= 2 ? d2w.mutable_data() : nullptr;
        {
          ReleaseGilFor release(static_cast<std::size_t>(n));
          pricing::svi_total_variance({a, b, rho, mm, sigma}, kv, static_cast<std::size_t>(n), pw,
                                      pdw, pd2w, threads);
        }
        if (derivatives == 0) return py::make_tuple(w);
        if (derivatives == 1) return py::make_tuple(w, dw);
        return py::make_tuple(w, dw, d2w);
      },
      py::arg("k"), py::arg("a"), py::arg("b"), py::arg("rho"), py::arg("m"), py::arg("sigma"),
      py::arg("derivatives"), py::arg("threads"),
      "Raw-SVI total variance w(k) and its first `derivatives` k-derivatives, as a tuple.");

  m.def(
      "svi_density",
      [](const py::array& k, double a, double b, double rho, double mm, double sigma, int threads) {
        const py::ssize_t n = length_of(k, "k");
        const auto kv = view<double>(k, "k", n);
        py::array_t<double> g(n);
        double* pg = g.mutable_data();
        {
          ReleaseGilFor release(static_cast<std::size_t>(n));
          pricing::svi_density({a, b, rho, mm, sigma}, kv, static_cast<std::size_t>(n), pg,
                               threads);
        }
        return g;
      },
      py::arg("k"), py::arg("a"), py::arg("b"), py::arg("rho"), py::arg("m"), py::arg("sigma"),
      py::arg("threads"), "Gatheral's butterfly density g(k) of a raw-SVI slice.");

  m.def(
      "sabr_vol",
      [](const py::array& F, const py::array& K, const py::array& T, double alpha, double beta,
         double rho, double nu, int threads) {
        const py::ssize_t n = length_of(K, "K");
        const auto fv = view<double>(F, "F", n);
        const auto kv = view<double>(K, "K", n);
        const auto tv = view<double>(T, "T", n);
        py::array_t<double> vol(n);
        double* pv = vol.mutable_data();
        {
          ReleaseGilFor release(static_cast<std::size_t>(n));
          pricing::sabr_vol({alpha, beta, rho, nu}, fv, kv, tv, static_cast<std::size_t>(n), pv,
                            threads);
        }
        return vol;
      },
      py::arg("F"), py::arg("K"), py::arg("T"), py::arg("alpha"), py::arg("beta"), py::arg("rho"),
      py::arg("nu"), py::arg("threads"),
      "Hagan 2002 SABR lognormal implied vol per (F, K, T) row (NaN where undefined).");

  m.def(
      "surface_vol",
      [](const std::string& model, const py::array_t<double, py::array::c_style>& expiries,
         const py::array_t<double, py::array::c_style>& forwards,
         const py::array_t<double, py::array::c_style>& params, double spot, const py::array& K,
         const py::array& T, int threads) {
        pricing::SurfaceSpec s;
        s.model = slice_model(model);
        if (expiries.ndim() != 1) throw std::invalid_argument("expiries: expected a 1-D array");
        const py::ssize_t ns = expiries.shape(0);
        if (forwards.ndim() != 1 || forwards.shape(0) != ns)
          throw std::invalid_argument("forwards: expected a 1-D array of length " +
                                      std::to_string(ns));
        const auto np = static_cast<py::ssize_t>(pricing::param_count(s.model));
        if (params.ndim() != 2 || params.shape(0) != ns || params.shape(1) != np)
          throw std::invalid_argument("params: expected shape (" + std::to_string(ns) + ", " +
                                      std::to_string(np) + ")");
        s.expiries = expiries.data();
        s.forwards = forwards.data();
        s.params = params.data();
        s.n_slices = static_cast<std::size_t>(ns);
        s.spot = spot;
        const py::ssize_t n = length_of(K, "K");
        const auto kv = view<double>(K, "K", n);
        const auto tv = view<double>(T, "T", n);
        py::array_t<double> vol(n);
        double* pv = vol.mutable_data();
        {
          ReleaseGilFor release(static_cast<std::size_t>(n));
          pricing::surface_vol(s, kv, tv, static_cast<std::size_t>(n), pv, threads);
        }
        return vol;
      },
      py::arg("model"), py::arg("expiries"), py::arg("forwards"), py::arg("params"),
      py::arg("spot"), py::arg("K"), py::arg("T"), py::arg("threads"),
      "Implied vol of a fitted surface at (K, T) rows (see tradecore.surface.VolSurface.vol).");
}

}  // namespace tradecore::bindings
