#include "tradecore/pricing/surface.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../threads.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kParallelMin = 8192;

int resolve_threads(int threads, std::size_t n) {
  return n < kParallelMin ? 1 : ::tradecore::detail::resolve_threads(threads);
}

// Runs body(i) for i in [0, n), over `threads` threads when the batch is large enough.
template <class Body>
void for_rows(std::size_t n, int threads, Body&& body) {
  const int nt = resolve_threads(threads, n);
  const auto count = static_cast<std::ptrdiff_t>(n);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (std::ptrdiff_t i = 0; i < count; ++i) body(static_cast<std::size_t>(i));
#else
  (void)nt;
  for (std::ptrdiff_t i = 0; i < count; ++i) body(static_cast<std::size_t>(i));
#endif
}

[[noreturn]] void invalid(const char* model, const char* name, const char* rule, double value) {
  std::ostringstream msg;
  msg.precision(17);
  msg << model << ": " << name << ' ' << rule << " (got " << value << ')';
  throw std::invalid_argument(msg.str());
}

void require_finite(const char* model, const char* name, double v) {
  if (!std::isfinite(v)) invalid(model, name, "must be finite", v);
}

struct SviEval {
  double w, dw, d2w;
};

inline SviEval svi_eval(const SviParams& p, double k) noexcept {
  const double x = k - p.m;
  const double r = std::sqrt(x * x + p.sigma * p.sigma);
  return {p.a + p.b * (p.rho * x + r), p.b * (p.rho + x / r),
          p.b * p.sigma * p.sigma / (r * r * r)};
}

inline double density(double k, double w, double dw, double d2w) noexcept {
  if (!(w > 0.0)) return kNaN;
  const double t = 1.0 - k * dw / (2.0 * w);
  return t * t - 0.25 * dw * dw * (1.0 / w + 0.25) + 0.5 * d2w;
}

// z / x(z) of Hagan's formula, with its series near z = 0.
inline double z_over_x(double z, double rho) noexcept {
  if (std::fabs(z) < 1e-6) return 1.0 - 0.5 * rho * z + (2.0 - 3.0 * rho * rho) * z * z / 12.0;
  const double s = std::sqrt(1.0 - 2.0 * rho * z + z * z);
  const double x = std::log((s + z - rho) / (1.0 - rho));
  return z / x;
}

inline double sabr_one(const SabrParams& p, double f, double k, double t) noexcept {
  if (!(f > 0.0) || !(k > 0.0) || !(t >= 0.0) || !std::isfinite(f) || !std::isfinite(k) ||
      !std::isfinite(t))
    return kNaN;
  const double omb = 1.0 - p.beta;
  const double lfk = std::log(f / k);
  const double fk_pow = std::exp(0.5 * omb * std::log(f * k));  // (F K)^((1 - beta) / 2)
  const double omb2 = omb * omb;
  const double l2 = lfk * lfk;
  const double denom = fk_pow * (1.0 + omb2 / 24.0 * l2 + omb2 * omb2 / 1920.0 * l2 * l2);
  const double z = p.nu / p.alpha * fk_pow * lfk;
  const double corr = 1.0 + (omb2 / 24.0 * p.alpha * p.alpha / (fk_pow * fk_pow) +
                             0.25 * p.rho * p.beta * p.nu * p.alpha / fk_pow +
                             (2.0 - 3.0 * p.rho * p.rho) / 24.0 * p.nu * p.nu) *
                                t;
  const double v = p.alpha / denom * z_over_x(z, p.rho) * corr;
  return v > 0.0 ? v : kNaN;
}

inline SviParams svi_row(const double* row) noexcept {
  return {row[0], row[1], row[2], row[3], row[4]};
}
inline SabrParams sabr_row(const double* row) noexcept { return {row[0], row[1], row[2], row[3]}; }

}  // namespace

void validate(const SviParams& p) {
  require_finite("svi", "a", p.a);
  require_finite("svi", "b", p.b);
  require_finite("svi", "rho", p.rho);
  require_finite("svi", "m", p.m);
  require_finite("svi", "sigma", p.sigma);
  if (p.b < 0.0) invalid("svi", "b", "must be >= 0", p.b);
  if (!(std::fabs(p.rho) < 1.0)) invalid("svi", "rho", "must be in (-1, 1)", p.rho);
  if (!(p.sigma > 0.0)) invalid("svi", "sigma", "must be > 0", p.sigma);
  const double w_min = p.a + p.b * p.sigma * std::sqrt(1.0 - p.rho * p.rho);
  if (w_min < -1e-14) invalid("svi", "a", "must keep a + b sigma sqrt(1 - rho^2) >= 0", p.a);
}

void validate(const SabrParams& p) {
  require_finite("sabr", "alpha", p.alpha);
  require_finite("sabr", "beta", p.beta);
  require_finite("sabr", "rho", p.rho);
  require_finite("sabr", "nu", p.nu);
  if (!(p.alpha > 0.0)) invalid("sabr", "alpha", "must be > 0", p.alpha);
  if (p.beta < 0.0 || p.beta > 1.0) invalid("sabr", "beta", "must be in [0, 1]", p.beta);
  if (!(std::fabs(p.rho) < 1.0)) invalid("sabr", "rho", "must be in (-1, 1)", p.rho);
  if (p.nu < 0.0) invalid("sabr", "nu", "must be >= 0", p.nu);
}

void svi_total_variance(const SviParams& p, In<double> k, std::size_t n, double* w, double* dw,
                        double* d2w, int threads) {
  validate(p);
  for_rows(n, threads, [&](std::size_t i) {
    const SviEval e = svi_eval(p, k[i]);
    w[i] = e.w;
    if (dw) dw[i] = e.dw;
    if (d2w) d2w[i] = e.d2w;
  });
}

void svi_density(const SviParams& p, In<double> k, std::size_t n, double* g, int threads) {
  validate(p);
  for_rows(n, threads, [&](std::size_t i) {
    const double ki = k[i];
    const SviEval e = svi_eval(p, ki);
    g[i] = density(ki, e.w, e.dw, e.d2w);
  });
}

void sabr_vol(const SabrParams& p, In<double> forward, In<double> strike, In<double> expiry,
              std::size_t n, double* vol, int threads) {
  validate(p);
  for_rows(n, threads,
           [&](std::size_t i) { vol[i] = sabr_one(p, forward[i], strike[i], expiry[i]); });
}

std::size_t param_count(SliceModel model) noexcept { return model == SliceModel::Svi ? 5 : 4; }

void validate(const SurfaceSpec& s) {
  if (s.model != SliceModel::Svi && s.model != SliceModel::Sabr)
    throw std::invalid_argument("model: must be svi or sabr");
  if (s.n_slices == 0) throw std::invalid_argument("expiries: a surface needs at least one slice");
  if (!s.expiries || !s.forwards || !s.params)
    throw std::invalid_argument("expiries/forwards/params: null array");
  if (!std::isfinite(s.spot)) invalid("surface", "spot", "must be finite", s.spot);
  const std::size_t np = param_count(s.model);
  for (std::size_t i = 0; i < s.n_slices; ++i) {
    const double t = s.expiries[i];
    if (!(t > 0.0) || !std::isfinite(t))
      invalid("surface", "expiries", "must be finite and > 0", t);
    if (i > 0 && !(t > s.expiries[i - 1]))
      invalid("surface", "expiries", "must be strictly increasing", t);
    const double f = s.forwards[i];
    if (!(f > 0.0) || !std::isfinite(f))
      invalid("surface", "forwards", "must be finite and > 0", f);
    const double* row = s.params + i * np;
    if (s.model == SliceModel::Svi) {
      validate(svi_row(row));
    } else {
      validate(sabr_row(row));
    }
  }
}

double surface_forward(const SurfaceSpec& s, double t) noexcept {
  const std::size_t n = s.n_slices;
  const double* T = s.expiries;
  const double* F = s.forwards;
  const bool anchored = s.spot > 0.0;
  auto lerp = [](double t0, double f0, double t1, double f1, double t) {
    const double l0 = std::log(f0);
    return std::exp(l0 + (std::log(f1) - l0) * (t - t0) / (t1 - t0));
  };
  if (t <= T[0]) return anchored ? lerp(0.0, s.spot, T[0], F[0], t) : F[0];
  if (t >= T[n - 1]) {
    if (n >= 2) return lerp(T[n - 2], F[n - 2], T[n - 1], F[n - 1], t);
    return anchored ? lerp(0.0, s.spot, T[0], F[0], t) : F[0];
  }
  std::size_t hi = 1;
  while (T[hi] < t) ++hi;
  return lerp(T[hi - 1], F[hi - 1], T[hi], F[hi], t);
}

double slice_total_variance(const SurfaceSpec& s, std::size_t i, double k) noexcept {
  const double* row = s.params + i * param_count(s.model);
  if (s.model == SliceModel::Svi) return svi_eval(svi_row(row), k).w;
  const double f = s.forwards[i];
  const double t = s.expiries[i];
  const double v = sabr_one(sabr_row(row), f, f * std::exp(k), t);
  return v * v * t;
}

void surface_vol(const SurfaceSpec& s, In<double> strike, In<double> expiry, std::size_t n,
                 double* vol, int threads) {
  validate(s);
  const std::size_t m = s.n_slices;
  const double* T = s.expiries;
  // ln F pillars (with the spot at T = 0 when known), so a query costs one log for k.
  std::vector<double> pt, pl;
  pt.reserve(m + 1);
  pl.reserve(m + 1);
  if (s.spot > 0.0) {
    pt.push_back(0.0);
    pl.push_back(std::log(s.spot));
  }
  for (std::size_t j = 0; j < m; ++j) {
    pt.push_back(T[j]);
    pl.push_back(std::log(s.forwards[j]));
  }
  const std::size_t np = pt.size();
  auto log_forward = [&](double t) {
    if (np == 1 || t <= pt[0]) return pl[0];
    std::size_t hi = 1;
    while (hi < np - 1 && pt[hi] < t) ++hi;  // beyond the last pillar: the last segment
    return pl[hi - 1] + (pl[hi] - pl[hi - 1]) * (t - pt[hi - 1]) / (pt[hi] - pt[hi - 1]);
  };
  for_rows(n, threads, [&](std::size_t i) {
    const double K = strike[i];
    const double t = expiry[i];
    if (!(K > 0.0) || !(t >= 0.0) || !std::isfinite(K) || !std::isfinite(t)) {
      vol[i] = kNaN;
      return;
    }
    const double k = std::log(K) - log_forward(t);
    double var;  // implied variance w / t
    if (t <= T[0]) {
      var = slice_total_variance(s, 0, k) / T[0];
    } else if (t >= T[m - 1]) {
      const double wn = slice_total_variance(s, m - 1, k);
      if (m == 1) {
        var = wn / T[0];
      } else {
        const double wp = slice_total_variance(s, m - 2, k);
        const double slope = std::fmax((wn - wp) / (T[m - 1] - T[m - 2]), 0.0);
        var = (wn + (t - T[m - 1]) * slope) / t;
      }
    } else {
      std::size_t hi = 1;
      while (T[hi] < t) ++hi;
      const double w0 = slice_total_variance(s, hi - 1, k);
      const double w1 = slice_total_variance(s, hi, k);
      const double theta = (t - T[hi - 1]) / (T[hi] - T[hi - 1]);
      var = (w0 + theta * (w1 - w0)) / t;
    }
    vol[i] = var >= 0.0 ? std::sqrt(var) : kNaN;
  });
}

}  // namespace tradecore::pricing
