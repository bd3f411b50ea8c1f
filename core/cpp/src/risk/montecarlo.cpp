// Monte-Carlo VaR on the CPU (tradecore/risk/montecarlo.hpp): blocks of paths per thread, the
// block's normals drawn by the shared Philox stream (normals.cpp, scalar libm: bit-identical to
// tradecore.risk.normals), then vectorised loops over the block's paths for every instrument.
#if defined(TC_HAVE_LIBMVEC)
// Declares glibc's vector variants of exp/erfc so that the `omp simd` loops below call libmvec.
#define __FAST_MATH__ 1
#include <math.h>
#undef __FAST_MATH__
#endif
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "../threads.hpp"
#include "tradecore/risk/montecarlo.hpp"
#include "tradecore/risk/montecarlo_kernels.hpp"
#include "tradecore/risk/normals.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tradecore::risk {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

bool finite(double x) { return std::isfinite(x); }

// Value at the horizon minus value now of one instrument over a block of nb paths.
void value_block(const McPrepared& p, const double* __restrict x, const double* __restrict S,
                 const double* __restrict sig, std::size_t nb, double* __restrict out) {
  switch (p.kind) {
    case kMcEquity: {
      const double v0 = p.vnow;
#pragma omp simd
      for (std::size_t i = 0; i < nb; ++i) out[i] = S[i] - v0;
      break;
    }
    case kMcEuropean:
      if (sig) {
#pragma omp simd
        for (std::size_t i = 0; i < nb; ++i) out[i] = mc_european_vol(p, x[i], S[i], sig[i]);
      } else {
#pragma omp simd
        for (std::size_t i = 0; i < nb; ++i) out[i] = mc_european(p, x[i], S[i]);
      }
      break;
    case kMcGrid:
#pragma omp simd
      for (std::size_t i = 0; i < nb; ++i) out[i] = mc_grid(p, x[i], S[i]);
      break;
    default:
#pragma omp simd
      for (std::size_t i = 0; i < nb; ++i) out[i] = mc_intrinsic(p, S[i]);
      break;
  }
}

}  // namespace

void validate_monte_carlo(const McMarket& mk, const McInstruments& in, const McPositions& pos,
                          const McConfig& cfg) {
  const std::size_t n = mk.n;
  if (n < 1) bad("underlyings: must not be empty");
  if (!mk.spot || !mk.vol || !mk.dividend || !mk.cholesky) bad("market: missing array");
  for (std::size_t u = 0; u < n; ++u) {
    const std::string at = "market.underlyings[" + std::to_string(u) + "]";
    if (!(finite(mk.spot[u]) && mk.spot[u] > 0.0)) bad(at + ".spot: must be finite and > 0");
    if (!(finite(mk.vol[u]) && mk.vol[u] > 0.0)) bad(at + ".volatility: must be finite and > 0");
    if (!finite(mk.dividend[u])) bad(at + ".dividend_yield: must be finite");
    for (std::size_t k = 0; k < n; ++k)
      if (!finite(mk.cholesky[u * n + k])) bad("cholesky: must be finite");
  }
  if (!finite(mk.rate)) bad("market.rate: must be finite");
  if (mk.spot_vol_corr && !mk.vol_of_vol) bad("spot_vol_correlation: needs vol_of_vol");
  if (mk.vol_of_vol) {
    for (std::size_t u = 0; u < n; ++u) {
      if (!(finite(mk.vol_of_vol[u]) && mk.vol_of_vol[u] >= 0.0 && mk.vol_of_vol[u] <= 10.0))
        bad("vol_of_vol[" + std::to_string(u) + "]: must be finite and in [0, 10]");
      if (mk.spot_vol_corr && !(mk.spot_vol_corr[u] >= -1.0 && mk.spot_vol_corr[u] <= 1.0))
        bad("spot_vol_correlation[" + std::to_string(u) + "]: must be in [-1, 1]");
    }
  }
  if (!(finite(cfg.horizon) && cfg.horizon > 0.0)) bad("horizon: must be finite and > 0");
  if (cfg.paths < 1) bad("paths: must be >= 1");
  if (cfg.paths > kMcMaxPaths) bad("paths: must be <= " + std::to_string(kMcMaxPaths));
  if (cfg.first_path > std::numeric_limits<std::uint64_t>::max() - (cfg.paths - 1))
    bad("first_path: first_path + paths must be <= 2^64");
  if (cfg.student_t_dof != 0 && (cfg.student_t_dof < 3 || cfg.student_t_dof > kMcMaxDof))
    bad("student_t_dof: must be 0 or in [3, " + std::to_string(kMcMaxDof) + "]");
  if (!cfg.full && !cfg.delta_gamma) bad("outputs: neither full nor delta-gamma losses requested");
  if (in.m < 1) bad("instruments: must not be empty");
  if (!in.underlying || !in.kind || !in.type || !in.strike || !in.expiry || !in.value_now)
    bad("instruments: missing array");
  for (std::size_t i = 0; i < in.m; ++i) {
    const std::string at = "instruments[" + std::to_string(i) + "]";
    const int u = in.underlying[i];
    if (u < 0 || static_cast<std::size_t>(u) >= n) bad(at + ".underlying: out of range");
    if (!finite(in.value_now[i])) bad(at + ".value_now: must be finite");
    const int k = in.kind[i];
    if (k < kMcEquity || k > kMcIntrinsic) bad(at + ".kind: unknown");
    if (k == kMcEquity) continue;
    if (in.type[i] != 1 && in.type[i] != -1) bad(at + ".option_type: must be +1 or -1");
    if (!(finite(in.strike[i]) && in.strike[i] > 0.0)) bad(at + ".strike: must be finite and > 0");
    if (!finite(in.expiry[i])) bad(at + ".expiry: must be finite");
    if (k == kMcEuropean && !(in.expiry[i] - cfg.horizon > 0.0))
      bad(at + ".expiry: a European revalued analytically must outlive the horizon");
    if (k == kMcGrid) {
      if (!in.grid_offset || !in.grid_size || !in.grid_x0 || !in.grid_dx || !in.grid_values)
        bad("grids: missing array");
      const std::int64_t off = in.grid_offset[i];
      const std::int64_t len = in.grid_size[i];
      if (len < 4) bad(at + ".grid: at least 4 nodes");
      if (off < 0 || static_cast<std::uint64_t>(off + len) > in.grid_total)
        bad(at + ".grid: outside grid_values");
      if (!(finite(in.grid_x0[i]) && finite(in.grid_dx[i]) && in.grid_dx[i] > 0.0))
        bad(at + ".grid: x0 and dx must be finite, dx > 0");
      for (std::int64_t j = 0; j < len; ++j)
        if (!finite(in.grid_values[off + j])) bad(at + ".grid: values must be finite");
    }
  }
  if (pos.count < 1) bad("positions: must not be empty");
  if (pos.portfolios < 1) bad("portfolios: must be >= 1");
  if (pos.portfolios > kMcMaxLosses / cfg.paths)
    bad("portfolios * paths: must be <= " + std::to_string(kMcMaxLosses));
  if (!pos.instrument || !pos.portfolio || !pos.units) bad("positions: missing array");
  for (std::size_t j = 0; j < pos.count; ++j) {
    const std::string at = "positions[" + std::to_string(j) + "]";
    if (pos.instrument[j] < 0 || static_cast<std::size_t>(pos.instrument[j]) >= in.m)
      bad(at + ".instrument: out of range");
    if (pos.portfolio[j] < 0 || static_cast<std::size_t>(pos.portfolio[j]) >= pos.portfolios)
      bad(at + ".portfolio: out of range");
    if (!finite(pos.units[j])) bad(at + ".units: must be finite");
  }
  if (cfg.delta_gamma) {
    if (!pos.dg_delta || !pos.dg_gamma || !pos.dg_theta || (mk.vol_of_vol && !pos.dg_vega))
      bad("delta-gamma: missing sensitivities");
    for (std::size_t k = 0; k < pos.portfolios * n; ++k)
      if (!finite(pos.dg_delta[k]) || !finite(pos.dg_gamma[k]) ||
          (mk.vol_of_vol && !finite(pos.dg_vega[k])))
        bad("delta-gamma: sensitivities must be finite");
    for (std::size_t p = 0; p < pos.portfolios; ++p)
      if (!finite(pos.dg_theta[p])) bad("delta-gamma: theta must be finite");
  }
}

void monte_carlo_losses(const McMarket& mk, const McInstruments& in, const McPositions& pos,
                        const McConfig& cfg, const McLosses& out) {
  validate_monte_carlo(mk, in, pos, cfg);
  if ((cfg.full && !out.full) || (cfg.delta_gamma && !out.delta_gamma))
    bad("losses: missing output");
  const std::size_t n = mk.n, P = pos.portfolios, paths = cfg.paths;
  const double h = cfg.horizon, sqh = std::sqrt(h);
  const bool vols = mk.vol_of_vol != nullptr;
  const int dof = cfg.student_t_dof;
  // Factors of a path: n spot factors, then n vol factors (vol shocks), then dof for Student-t.
  const std::size_t vol_base = n, t_base = n + (vols ? n : 0);
  const std::size_t factors = t_base + static_cast<std::size_t>(dof);

  std::vector<McPrepared> prep(in.m);
  for (std::size_t i = 0; i < in.m; ++i)
    prep[i] = mc_prepare(mk, in, i, h,
                         in.kind[i] == kMcGrid ? in.grid_values + in.grid_offset[i] : nullptr);
  // Positions grouped by instrument (CSR), in their given order within an instrument.
  std::vector<std::size_t> start(in.m + 1, 0), order(pos.count);
  for (std::size_t j = 0; j < pos.count; ++j) ++start[pos.instrument[j] + 1];
  for (std::size_t i = 0; i < in.m; ++i) start[i + 1] += start[i];
  {
    std::vector<std::size_t> fill(start.begin(), start.end() - 1);
    for (std::size_t j = 0; j < pos.count; ++j) order[fill[pos.instrument[j]]++] = j;
  }
  std::vector<double> ln_spot(n), drift(n), vol_drift(n), vol_scale(n), rho(n), rho_c(n);
  for (std::size_t u = 0; u < n; ++u) {
    ln_spot[u] = std::log(mk.spot[u]);
    drift[u] = -0.5 * mk.vol[u] * mk.vol[u] * h;
    if (vols) {
      const double nu = mk.vol_of_vol[u];
      vol_drift[u] = -0.5 * nu * nu * h;
      vol_scale[u] = nu * sqh;
      rho[u] = mk.spot_vol_corr ? mk.spot_vol_corr[u] : 0.0;
      rho_c[u] = std::sqrt(std::max(1.0 - rho[u] * rho[u], 0.0));
    }
  }
  const std::size_t blocks = (paths + kMcBlock - 1) / kMcBlock;
  constexpr std::size_t B = kMcBlock;

#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(cfg.threads);
#pragma omp parallel num_threads(nt)
#endif
  {
    std::vector<double> z(B * factors), x(n * B), S(n * B), sig(vols ? n * B : 0), zs(B), val(B),
        pnl(cfg.full ? P * B : 0), dg(cfg.delta_gamma ? P * B : 0);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
    for (std::size_t blk = 0; blk < blocks; ++blk) {
      const std::size_t first = blk * B;
      const std::size_t nb = std::min(B, paths - first);
      philox_normals_serial(cfg.seed, cfg.first_path + first, nb, factors, z.data());
      // Student-t: one chi-square of dof normals per path, shared by every underlying.
      for (std::size_t i = 0; i < nb; ++i) zs[i] = mc_t_scale(&z[i * factors + t_base], dof);
      for (std::size_t u = 0; u < n; ++u) {
        const double* Lu = &mk.cholesky[u * n];
        double* xu = &x[u * B];
        double* Su = &S[u * B];
        const double ls = ln_spot[u] + drift[u], vs = mk.vol[u] * sqh;
        for (std::size_t i = 0; i < nb; ++i) {
          const double* zi = &z[i * factors];
          double Z = 0.0;
          for (std::size_t k = 0; k <= u; ++k) Z += Lu[k] * zi[k];
          if (vols) {
            const double zv = rho[u] * Z + rho_c[u] * zi[vol_base + u];
            sig[u * B + i] = mk.vol[u] * std::exp(vol_drift[u] + vol_scale[u] * zv);
          }
          xu[i] = ls + vs * (Z * zs[i]);
        }
#pragma omp simd
        for (std::size_t i = 0; i < nb; ++i) Su[i] = std::exp(xu[i]);
      }
      if (cfg.full) {
        std::fill(pnl.begin(), pnl.begin() + static_cast<std::ptrdiff_t>(P * B), 0.0);
        for (std::size_t k = 0; k < in.m; ++k) {
          if (start[k] == start[k + 1]) continue;
          const McPrepared& p = prep[k];
          value_block(p, &x[p.u * B], &S[p.u * B], vols ? &sig[p.u * B] : nullptr, nb, val.data());
          for (std::size_t q = start[k]; q < start[k + 1]; ++q) {
            const std::size_t j = order[q];
            const double units = pos.units[j];
            double* acc = &pnl[static_cast<std::size_t>(pos.portfolio[j]) * B];
            const double* v = val.data();
#pragma omp simd
            for (std::size_t i = 0; i < nb; ++i) acc[i] += units * v[i];
          }
        }
        for (std::size_t pf = 0; pf < P; ++pf) {
          double* dst = out.full + pf * paths + first;
          const double* acc = &pnl[pf * B];
#pragma omp simd
          for (std::size_t i = 0; i < nb; ++i) dst[i] = -acc[i];
        }
      }
      if (cfg.delta_gamma) {
        for (std::size_t pf = 0; pf < P; ++pf) {
          double* acc = &dg[pf * B];
          const double th = pos.dg_theta[pf] * h;
          for (std::size_t i = 0; i < nb; ++i) acc[i] = th;
          for (std::size_t u = 0; u < n; ++u) {
            const double d = pos.dg_delta[pf * n + u], g = 0.5 * pos.dg_gamma[pf * n + u];
            const double s0 = mk.spot[u];
            const double* Su = &S[u * B];
#pragma omp simd
            for (std::size_t i = 0; i < nb; ++i) {
              const double dS = Su[i] - s0;
              acc[i] += dS * (d + g * dS);
            }
            if (vols) {
              const double vg = pos.dg_vega[pf * n + u], s0v = mk.vol[u];
              const double* su = &sig[u * B];
#pragma omp simd
              for (std::size_t i = 0; i < nb; ++i) acc[i] += vg * (su[i] - s0v);
            }
          }
          double* dst = out.delta_gamma + pf * paths + first;
#pragma omp simd
          for (std::size_t i = 0; i < nb; ++i) dst[i] = -acc[i];
        }
      }
    }
  }
}

TailStats tail_stats(double* x, std::size_t n, double c) {
  if (n < 1) bad("losses: must not be empty");
  if (!(c > 0.0 && c < 1.0)) bad("confidence: must be in (0, 1)");
  // k = ceil(c n) - 1 (0-based), as tradecore.risk.result.tail_index.
  const double ck = std::ceil(c * static_cast<double>(n) - 1e-9) - 1.0;
  const std::size_t k =
      static_cast<std::size_t>(std::min(std::max(ck, 0.0), static_cast<double>(n - 1)));
  const double spread = std::sqrt(static_cast<double>(n) * c * (1.0 - c));
  const auto half = static_cast<std::size_t>(std::ceil(spread));
  const std::size_t lo = k > half ? k - half : 0;
  const std::size_t hi = std::min(k + half, n - 1);
  std::nth_element(x, x + k, x + n);
  if (lo < k) std::nth_element(x, x + lo, x + k);
  TailStats t;
  t.var = x[k];
  const std::size_t m = n - k;
  // The tail in ascending order (x[hi] is then in place), so that its sums do not depend on
  // nth_element's arrangement.
  std::sort(x + k, x + n);
  double sum = 0.0;
  for (std::size_t i = k; i < n; ++i) sum += x[i];
  t.es = sum / static_cast<double>(m);
  double ss = 0.0;
  for (std::size_t i = k; i < n; ++i) ss += (x[i] - t.es) * (x[i] - t.es);
  const double tail_var = m > 1 ? ss / static_cast<double>(m) : 0.0;
  t.var_stderr = 0.5 * (x[hi] - x[lo]);
  const double d = t.es - t.var;
  t.es_stderr = std::sqrt(std::max(tail_var + c * d * d, 0.0) / static_cast<double>(m));
  return t;
}

void tail_stats_rows(const double* losses, std::size_t rows, std::size_t n, double c,
                     TailStats* out, int threads) {
  if (!(c > 0.0 && c < 1.0)) bad("confidence: must be in (0, 1)");
  if (n < 1) bad("losses: must not be empty");
#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel num_threads(nt)
#else
  (void)threads;
#endif
  {
    std::vector<double> scratch(n);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (std::size_t r = 0; r < rows; ++r) {
      std::copy(losses + r * n, losses + (r + 1) * n, scratch.begin());
      out[r] = tail_stats(scratch.data(), n, c);
    }
  }
}

}  // namespace tradecore::risk
