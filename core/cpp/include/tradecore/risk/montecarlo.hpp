#pragma once
// Monte-Carlo VaR: scenario generation fused with full revaluation and the delta-gamma
// approximation, reduced to per-path losses and to VaR/ES with standard errors.
//
// Horizon model (docs/api.md, "Risk: Monte-Carlo VaR"): with h the horizon in years, each
// underlying moves to S_h = S exp(-sigma^2 h / 2 + sigma sqrt(h) Z), Z = L z (L the lower Cholesky
// factor of the correlation, z the Philox normals of (seed, path, factor) for factors 0..n-1, so
// the scenarios are normals(seed, paths, n) @ L.T). Options are revalued at T - h (intrinsic when
// that is not above zero); loss = value now - value at the horizon.
//   Student-t (dof nu >= 3): Z is scaled by sqrt((nu - 2) / W), W the sum of nu squares of extra
//   normals of the same path (factors after the others): a multivariate t with unit variance.
//   Volatility shocks (vol_of_vol != null): sigma_h = sigma exp(-nu_u^2 h / 2 + nu_u sqrt(h) Zv),
//   Zv = rho_u Z_u + sqrt(1 - rho_u^2) z_{n+u} (rho_u the spot-vol correlation; Z_u before the
//   Student-t scaling), clamped to [1e-8, 100]; options are revalued with sigma_h, equities are
//   not affected.
//
// No scenario matrix is held: each thread takes blocks of kMcBlock paths, draws their normals,
// keeps the block's log-spots (and vols) in a small buffer and revalues every instrument over
// the block in vectorised loops. Every path's loss is a pure function of (inputs, seed, path),
// summed over positions in a fixed order, so the result does not depend on the thread count.
#include <cstddef>
#include <cstdint>

namespace tradecore::risk {

// Paths per block (one thread's unit of work).
inline constexpr std::size_t kMcBlock = 256;
// At most this many paths in one run, and this many portfolio x path losses in one call.
inline constexpr std::uint64_t kMcMaxPaths = std::uint64_t{1} << 26;
inline constexpr std::uint64_t kMcMaxLosses = std::uint64_t{1} << 26;
// Student-t degrees of freedom: 0 (normal) or in [3, kMcMaxDof].
inline constexpr int kMcMaxDof = 1000;
// A shocked volatility is clamped to the pricing domain's [vol_min, vol_max] (european.hpp), so
// that no path prices at a zero or infinite volatility (the American grids stop there too).
inline constexpr double kMcLnVolMin = -18.420680743952367;  // ln 1e-8
inline constexpr double kMcLnVolMax = 4.605170185988092;    // ln 100

// How an instrument is revalued at the horizon.
enum McKind : std::int8_t {
  kMcEquity = 0,     // S_h
  kMcEuropean = 1,   // analytic BSM at T - h
  kMcGrid = 2,       // cubic interpolation in ln S (and ln sigma) on a grid priced at T - h
  kMcIntrinsic = 3,  // max(w (S_h - K), 0): expires within the horizon
};

struct McMarket {
  std::size_t n = 0;  // underlyings
  const double* spot = nullptr;
  const double* vol = nullptr;
  const double* dividend = nullptr;
  double rate = 0.0;
  const double* cholesky = nullptr;       // n x n row-major, lower triangular
  const double* vol_of_vol = nullptr;     // n, or null: no volatility shocks
  const double* spot_vol_corr = nullptr;  // n (with vol_of_vol), or null: 0
};

// Distinct instruments (a batch prices each once per path, whichever portfolios hold it).
struct McInstruments {
  std::size_t m = 0;
  const std::int32_t* underlying = nullptr;
  const std::int8_t* kind = nullptr;  // McKind
  const std::int8_t* type = nullptr;  // +1 call, -1 put (ignored for equities)
  const double* strike = nullptr;
  const double* expiry = nullptr;     // years, now (the kernel revalues at expiry - horizon)
  const double* value_now = nullptr;  // price per unit now (equities: the spot)
  // kMcGrid: the price at T - h at ln S = grid_x0[i] + j grid_dx[i] (j < grid_size[i]) and,
  // with volatility shocks, ln sigma = grid_y0[i] + k grid_dy[i] (k < grid_vsize[i]; 1: a grid
  // over spot only): value (k, j) at grid_values[grid_offset[i] + k grid_size[i] + j]. Other
  // kinds: not read. grid_vsize, grid_y0 and grid_dy may be null (spot-only grids).
  const std::int64_t* grid_offset = nullptr;
  const std::int32_t* grid_size = nullptr;
  const double* grid_x0 = nullptr;
  const double* grid_dx = nullptr;
  const std::int32_t* grid_vsize = nullptr;
  const double* grid_y0 = nullptr;
  const double* grid_dy = nullptr;
  const double* grid_values = nullptr;
  std::size_t grid_total = 0;  // length of grid_values
};

// Positions of one or more portfolios over the instruments, and each portfolio's delta-gamma
// sensitivities (aggregated per underlying by the caller from the pricing kernels' Greeks).
struct McPositions {
  std::size_t count = 0;
  std::size_t portfolios = 1;
  const std::int32_t* instrument = nullptr;  // index into McInstruments
  const std::int32_t* portfolio = nullptr;   // in [0, portfolios)
  const double* units = nullptr;
  const double* dg_delta = nullptr;  // portfolios x n: dV/dS
  const double* dg_gamma = nullptr;  // portfolios x n: d2V/dS2
  const double* dg_vega = nullptr;   // portfolios x n: dV/dsigma (read with vol shocks only)
  const double* dg_theta = nullptr;  // portfolios: dV/dt per year (calendar decay)
};

struct McConfig {
  double horizon = 0.0;  // years, > 0
  std::uint64_t seed = 0;
  std::uint64_t first_path = 0;
  std::uint64_t paths = 0;
  int student_t_dof = 0;
  bool full = true;         // compute full-revaluation losses (else only delta-gamma)
  bool delta_gamma = true;  // compute delta-gamma losses
  int threads = 0;          // 0: the OpenMP default
};

// Losses (value now - value at the horizon), portfolios x paths row-major: out[p * paths + i]
// is path first_path + i of portfolio p. A null pointer skips that output (its flag must be
// off then).
struct McLosses {
  double* full = nullptr;
  double* delta_gamma = nullptr;
};

// Throws std::invalid_argument naming the first invalid argument (sizes, indices, horizon,
// dof, grids, vol shocks).
void validate_monte_carlo(const McMarket& market, const McInstruments& inst, const McPositions& pos,
                          const McConfig& cfg);

// Fills the requested losses (validated first).
void monte_carlo_losses(const McMarket& market, const McInstruments& inst, const McPositions& pos,
                        const McConfig& cfg, const McLosses& out);

struct TailStats {
  double var = 0.0, es = 0.0, var_stderr = 0.0, es_stderr = 0.0;
};

// VaR, ES and their standard errors of n losses at confidence c, exactly as
// tradecore.risk.result.var_es defines them: VaR the k-th order statistic (k = ceil(c n)),
// ES the mean of the n - k + 1 largest, VaR's error half the spread of the order statistics
// ceil(sqrt(n c (1 - c))) either side of k, ES's the asymptotic
// sqrt((Var(tail) + c (ES - VaR)^2) / (n - k + 1)). Reorders `scratch` (n values, a copy).
TailStats tail_stats(double* scratch, std::size_t n, double confidence);

// tail_stats of each of `rows` rows of `losses` (rows x n), OpenMP over rows; out[r]. Throws
// tradecore::Error if a loss is not finite (a safety net: the kernels keep every input of a
// price inside its domain).
void tail_stats_rows(const double* losses, std::size_t rows, std::size_t n, double confidence,
                     TailStats* out, int threads = 0);

}  // namespace tradecore::risk
