// Monte-Carlo VaR on the CPU (tradecore/risk/montecarlo.hpp): blocks of kMcBlock paths per
// thread; each block's normals drawn from the shared Philox stream (tradecore/risk/philox.hpp)
// in vector loops, then vectorised loops over the block's paths for every instrument.
//
// Every per-path loop runs over the whole block (lanes past the last path are computed and
// dropped) on 64-byte aligned buffers, so no path is ever handled by a scalar prologue or
// epilogue: a path's value depends on its (seed, path) only, not on where its block starts, on
// the thread or on the thread count. Box-Muller here uses libmvec's log/sin/cos, so the normals
// equal tradecore.risk.normals (scalar libm) to a few ulp, not bit for bit.
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
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "../threads.hpp"
#include "tradecore/common.hpp"
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

constexpr std::size_t B = kMcBlock;

// Buffers of whole blocks, 64-byte aligned (B doubles = 2 KiB, so every row stays aligned).
class Rows {
 public:
  explicit Rows(std::size_t rows)
      : p_(rows ? static_cast<double*>(std::aligned_alloc(64, rows * B * sizeof(double)))
                : nullptr) {
    if (rows && !p_) throw std::bad_alloc();
  }
  ~Rows() { std::free(p_); }
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  double* row(std::size_t r) const {
    return static_cast<double*>(__builtin_assume_aligned(p_ + r * B, 64));
  }

 private:
  double* p_;
};

inline const double* al(const double* p) {
  return static_cast<const double*>(__builtin_assume_aligned(p, 64));
}

// philox4x32_10 (tradecore/risk/philox.hpp) on scalars rather than arrays, so that GCC
// vectorises it across the paths of a block: the same rounds, key schedule and words.
inline void philox_scalars(std::uint32_t& x0, std::uint32_t& x1, std::uint32_t& x2,
                           std::uint32_t& x3, std::uint32_t k0, std::uint32_t k1) {
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(philox_detail::kM0) * x0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(philox_detail::kM1) * x2;
    const std::uint32_t y0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1 ^ k0;
    const std::uint32_t y2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3 ^ k1;
    x1 = static_cast<std::uint32_t>(p1);
    x3 = static_cast<std::uint32_t>(p0);
    x0 = y0;
    x2 = y2;
    k0 += philox_detail::kW0;
    k1 += philox_detail::kW1;
  }
}

// The normals of factors 0..factors-1 of paths first..first+B-1, factor-major (row j of z),
// keyed as philox.hpp's normal_block/box_muller: counter {path lo, path hi, j / 2, 0}, key the
// seed; the even factor takes the cosine, the odd one the sine.
void block_normals(std::uint64_t seed, std::uint64_t first, std::size_t factors, const Rows& z,
                   const Rows& spare) {
  const auto k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  double* theta = spare.row(1);
  for (std::size_t j = 0; j < factors; j += 2) {
    double* a = z.row(j);
    double* b = j + 1 < factors ? z.row(j + 1) : spare.row(0);
    const auto pair = static_cast<std::uint32_t>(j / 2);
#pragma omp simd
    for (std::size_t i = 0; i < B; ++i) {
      const std::uint64_t path = first + i;
      std::uint32_t x0 = static_cast<std::uint32_t>(path);
      std::uint32_t x1 = static_cast<std::uint32_t>(path >> 32);
      std::uint32_t x2 = pair, x3 = 0u;
      philox_scalars(x0, x1, x2, x3, k0, k1);
      a[i] = sqrt(-2.0 * log(uniform_open(x0, x1)));
      theta[i] = 6.283185307179586476925286766559 * uniform_open(x2, x3);
    }
    // sin and cos in loops of their own: together GCC would fuse them into a sincos call,
    // which has no vector variant.
#pragma omp simd
    for (std::size_t i = 0; i < B; ++i) b[i] = a[i] * sin(theta[i]);
#pragma omp simd
    for (std::size_t i = 0; i < B; ++i) a[i] = a[i] * cos(theta[i]);
  }
}

// Where a block of values goes: stored (an instrument several positions share), or added times
// the units into a portfolio's P&L (the one position of an instrument: no second pass).
struct Store {
  double* out;
  void operator()(std::size_t i, double v) const { out[i] = v; }
};
struct Accumulate {
  double* acc;
  double units;
  void operator()(std::size_t i, double v) const { acc[i] += units * v; }
};

// Value at the horizon minus value now of one instrument over a block, into `sink`.
// sigr and lsigr: the path's volatility and its log (null without volatility shocks).
template <class Sink>
void value_block(const McPrepared& shared, const double* __restrict xr, const double* __restrict Sr,
                 const double* __restrict sigr, const double* __restrict lsigr, Sink sink) {
  const McPrepared p = shared;  // a local copy: the sink's stores cannot alias its fields
  const double* x = al(xr);
  const double* S = al(Sr);
  switch (p.kind) {
    case kMcEquity: {
      const double v0 = p.vnow;
#pragma omp simd
      for (std::size_t i = 0; i < B; ++i) sink(i, S[i] - v0);
      break;
    }
    case kMcEuropean:
      if (sigr) {
        const double* sig = al(sigr);
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) sink(i, mc_european_vol(p, x[i], S[i], sig[i]));
      } else {
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) sink(i, mc_european(p, x[i], S[i]));
      }
      break;
    case kMcGrid:
      if (p.gny > 1) {
        const double* lsig = al(lsigr);
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) sink(i, mc_grid2(p, x[i], S[i], lsig[i]));
      } else {
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) sink(i, mc_grid(p, x[i], S[i]));
      }
      break;
    default:
#pragma omp simd
      for (std::size_t i = 0; i < B; ++i) sink(i, mc_intrinsic(p, S[i]));
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
      const std::int64_t rows = in.grid_vsize ? in.grid_vsize[i] : 1;
      if (len < 4) bad(at + ".grid: at least 4 nodes");
      if (rows != 1 && rows < 4) bad(at + ".grid: 1 or at least 4 volatility nodes");
      if (rows > 1 && !mk.vol_of_vol) bad(at + ".grid: a volatility grid needs vol_of_vol");
      if (rows > 1 && !(in.grid_y0 && in.grid_dy && finite(in.grid_y0[i]) &&
                        finite(in.grid_dy[i]) && in.grid_dy[i] > 0.0))
        bad(at + ".grid: y0 and dy must be finite, dy > 0");
      if (off < 0 || len > std::numeric_limits<std::int64_t>::max() / rows ||
          static_cast<std::uint64_t>(off) > in.grid_total ||
          static_cast<std::uint64_t>(len * rows) > in.grid_total - static_cast<std::uint64_t>(off))
        bad(at + ".grid: outside grid_values");
      if (!(finite(in.grid_x0[i]) && finite(in.grid_dx[i]) && in.grid_dx[i] > 0.0))
        bad(at + ".grid: x0 and dx must be finite, dx > 0");
      for (std::int64_t j = 0; j < len * rows; ++j)
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
  std::vector<double> ln_spot(n), drift(n), ln_vol(n), vol_drift(n), vol_scale(n), rho(n), rho_c(n);
  for (std::size_t u = 0; u < n; ++u) {
    ln_spot[u] = std::log(mk.spot[u]);
    drift[u] = -0.5 * mk.vol[u] * mk.vol[u] * h;
    if (vols) {
      const double nu = mk.vol_of_vol[u];
      ln_vol[u] = std::log(mk.vol[u]);
      vol_drift[u] = -0.5 * nu * nu * h;
      vol_scale[u] = nu * sqh;
      rho[u] = mk.spot_vol_corr ? mk.spot_vol_corr[u] : 0.0;
      rho_c[u] = std::sqrt(std::max(1.0 - rho[u] * rho[u], 0.0));
    }
  }
  const std::size_t blocks = (paths + B - 1) / B;

#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(cfg.threads);
#pragma omp parallel num_threads(nt)
#endif
  {
    const Rows z(factors + 1), spare(2), x(n), S(n), sig(vols ? n : 0), lsig(vols ? n : 0), Z(1),
        zs(1), val(1), pnl(cfg.full ? P : 0), dg(cfg.delta_gamma ? P : 0);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
    for (std::size_t blk = 0; blk < blocks; ++blk) {
      const std::size_t first = blk * B;
      const std::size_t nb = std::min(B, paths - first);
      block_normals(cfg.seed, cfg.first_path + first, factors, z, spare);
      // Student-t: one chi-square of dof normals per path, shared by every underlying.
      double* t = zs.row(0);
      if (dof > 0) {
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) {
          double W = 0.0;
          for (int k = 0; k < dof; ++k) {
            const double v = z.row(t_base + k)[i];
            W += v * v;
          }
          t[i] = sqrt(static_cast<double>(dof - 2) / W);
        }
      } else {
        std::fill(t, t + B, 1.0);
      }
      // Correlated shocks Z_u = sum_k L[u][k] z_k (k ascending), log-spots, spots, vols.
      for (std::size_t u = 0; u < n; ++u) {
        const double* Lu = &mk.cholesky[u * n];
        double* Zu = Z.row(0);
        std::fill(Zu, Zu + B, 0.0);
        for (std::size_t k = 0; k <= u; ++k) {
          const double l = Lu[k];
          const double* zk = z.row(k);
#pragma omp simd
          for (std::size_t i = 0; i < B; ++i) Zu[i] += l * zk[i];
        }
        if (vols) {
          const double* zv = z.row(vol_base + u);
          double* su = sig.row(u);
          double* lu = lsig.row(u);
          const double r = rho[u], rc = rho_c[u], vsc = vol_scale[u], lv = ln_vol[u] + vol_drift[u];
#pragma omp simd
          for (std::size_t i = 0; i < B; ++i) {
            const double l = lv + vsc * (r * Zu[i] + rc * zv[i]);
            lu[i] = l < kMcLnVolMin ? kMcLnVolMin : (l > kMcLnVolMax ? kMcLnVolMax : l);
            su[i] = exp(lu[i]);
          }
        }
        double* xu = x.row(u);
        double* Su = S.row(u);
        const double ls = ln_spot[u] + drift[u], vs = mk.vol[u] * sqh;
#pragma omp simd
        for (std::size_t i = 0; i < B; ++i) {
          xu[i] = ls + vs * (Zu[i] * t[i]);
          Su[i] = exp(xu[i]);
        }
      }
      if (cfg.full) {
        for (std::size_t pf = 0; pf < P; ++pf) std::fill(pnl.row(pf), pnl.row(pf) + B, 0.0);
        double* v = val.row(0);
        for (std::size_t k = 0; k < in.m; ++k) {
          if (start[k] == start[k + 1]) continue;
          const McPrepared& p = prep[k];
          const double* xs = x.row(p.u);
          const double* Ss = S.row(p.u);
          const double* sg = vols ? sig.row(p.u) : nullptr;
          const double* lg = vols ? lsig.row(p.u) : nullptr;
          if (start[k + 1] - start[k] == 1) {
            const std::size_t j = order[start[k]];
            value_block(
                p, xs, Ss, sg, lg,
                Accumulate{pnl.row(static_cast<std::size_t>(pos.portfolio[j])), pos.units[j]});
            continue;
          }
          value_block(p, xs, Ss, sg, lg, Store{v});
          for (std::size_t q = start[k]; q < start[k + 1]; ++q) {
            const std::size_t j = order[q];
            const double units = pos.units[j];
            double* acc = pnl.row(static_cast<std::size_t>(pos.portfolio[j]));
#pragma omp simd
            for (std::size_t i = 0; i < B; ++i) acc[i] += units * v[i];
          }
        }
        for (std::size_t pf = 0; pf < P; ++pf) {
          double* dst = out.full + pf * paths + first;
          const double* acc = pnl.row(pf);
          for (std::size_t i = 0; i < nb; ++i) dst[i] = -acc[i];
        }
      }
      if (cfg.delta_gamma) {
        for (std::size_t pf = 0; pf < P; ++pf) {
          double* acc = dg.row(pf);
          std::fill(acc, acc + B, pos.dg_theta[pf] * h);
          for (std::size_t u = 0; u < n; ++u) {
            const double d = pos.dg_delta[pf * n + u], g = 0.5 * pos.dg_gamma[pf * n + u];
            const double s0 = mk.spot[u];
            const double* Su = S.row(u);
#pragma omp simd
            for (std::size_t i = 0; i < B; ++i) {
              const double dS = Su[i] - s0;
              acc[i] += dS * (d + g * dS);
            }
            if (vols) {
              const double vg = pos.dg_vega[pf * n + u], s0v = mk.vol[u];
              const double* su = sig.row(u);
#pragma omp simd
              for (std::size_t i = 0; i < B; ++i) acc[i] += vg * (su[i] - s0v);
            }
          }
          double* dst = out.delta_gamma + pf * paths + first;
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
  // One selection puts the n - lo largest at the end; sorting them (the tail and the band below
  // VaR, a few percent of the sample) gives lo, k, hi in place and sums that do not depend on
  // nth_element's arrangement.
  std::nth_element(x, x + lo, x + n);
  std::sort(x + lo, x + n);
  TailStats t;
  t.var = x[k];
  const std::size_t m = n - k;
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
  // Per row: the first path whose loss is not finite (n when all are), reported after the
  // parallel region (nothing may throw out of it).
  std::vector<std::size_t> first_bad(rows, n);
#ifdef _OPENMP
  // No more threads than rows: each holds a scratch copy of a row.
  const int nt = static_cast<int>(
      std::min<std::size_t>(static_cast<std::size_t>(::tradecore::detail::resolve_threads(threads)),
                            std::max<std::size_t>(rows, 1)));
#pragma omp parallel num_threads(nt)
#else
  (void)threads;
#endif
  {
    std::vector<double> scratch;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (std::size_t r = 0; r < rows; ++r) {
      const double* row = losses + r * n;
      std::size_t finite_count = 0;
#pragma omp simd reduction(+ : finite_count)
      for (std::size_t i = 0; i < n; ++i) finite_count += std::isfinite(row[i]) ? 1 : 0;
      if (finite_count != n) {
        first_bad[r] = static_cast<std::size_t>(
            std::find_if(row, row + n, [](double v) { return !std::isfinite(v); }) - row);
        continue;
      }
      scratch.assign(row, row + n);
      out[r] = tail_stats(scratch.data(), n, c);
    }
  }
  for (std::size_t r = 0; r < rows; ++r)
    if (first_bad[r] != n)
      throw Error("Monte-Carlo: the loss of path " + std::to_string(first_bad[r]) + " (portfolio " +
                  std::to_string(r) + ") is not finite");
}

}  // namespace tradecore::risk
