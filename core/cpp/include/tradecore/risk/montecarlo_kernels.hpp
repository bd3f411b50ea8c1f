#pragma once
// The per-path formulas of the Monte-Carlo VaR kernel (tradecore/risk/montecarlo.hpp), written
// once for the CPU (inlined into `omp simd` loops, libmvec's exp/erfc) and the GPU (CUDA's
// libdevice): per-instrument constants hoisted by mc_prepare, then a branch-light value per path.
#include <math.h>

#include <cstdint>

#include "tradecore/risk/montecarlo.hpp"
#include "tradecore/risk/philox.hpp"  // TC_HOST_DEVICE

namespace tradecore::risk {

inline constexpr double kMcInvSqrt2 = 0.70710678118654752440;

// Per-instrument constants.
struct McPrepared {
  int kind;
  int u;
  double w;  // +1 call, -1 put
  double K;
  double vnow;
  double sqrt_tau;  // sqrt(T - h)
  double c;         // ln K - (r - q)(T - h): d1 = (ln S_h - c) / s + s / 2, s = sigma sqrt(T - h)
  double alpha;     // -w d1 / sqrt 2 = alpha ln S_h + beta (the book's sigma)
  double beta;
  double shift;  // -w d2 / sqrt 2 = -w d1 / sqrt 2 + shift
  double fq;     // w e^{-q (T - h)} / 2
  double fk;     // w K e^{-r (T - h)} / 2
  // kMcGrid: the nodes, and the linear-in-S extrapolation beyond the ends.
  const double* g;
  int gn;
  double x0, inv_dx, x_hi;
  double s_lo, slope_lo, s_hi, slope_hi;
};

// The constants of instrument i at horizon h (years). `grid` points at the instrument's grid
// values in the memory the kernel will read (host or device).
inline McPrepared mc_prepare(const McMarket& mk, const McInstruments& in, std::size_t i, double h,
                             const double* grid) {
  McPrepared p{};
  p.kind = in.kind[i];
  p.u = in.underlying[i];
  p.w = in.type[i] < 0 ? -1.0 : 1.0;
  p.K = in.strike[i];
  p.vnow = in.value_now[i];
  if (p.kind == kMcEuropean) {
    const double tau = in.expiry[i] - h;
    const double r = mk.rate, q = mk.dividend[p.u], sigma = mk.vol[p.u];
    p.sqrt_tau = sqrt(tau);
    const double s = sigma * p.sqrt_tau;
    p.c = log(p.K) - (r - q) * tau;
    const double a = 1.0 / s;
    p.alpha = -p.w * a * kMcInvSqrt2;
    p.beta = -p.w * (0.5 * s - a * p.c) * kMcInvSqrt2;
    p.shift = p.w * s * kMcInvSqrt2;
    p.fq = 0.5 * p.w * exp(-q * tau);
    p.fk = 0.5 * p.w * p.K * exp(-r * tau);
  } else if (p.kind == kMcGrid) {
    const double* hv = in.grid_values + in.grid_offset[i];  // host copy, for the slopes
    p.g = grid;
    p.gn = in.grid_size[i];
    p.x0 = in.grid_x0[i];
    const double dx = in.grid_dx[i];
    p.inv_dx = 1.0 / dx;
    p.x_hi = p.x0 + (p.gn - 1) * dx;
    p.s_lo = exp(p.x0);
    p.slope_lo = (hv[1] - hv[0]) / (exp(p.x0 + dx) - p.s_lo);
    p.s_hi = exp(p.x_hi);
    p.slope_hi = (hv[p.gn - 1] - hv[p.gn - 2]) / (p.s_hi - exp(p.x_hi - dx));
  }
  return p;
}

// Value at the horizon minus value now, per unit. x = ln S_h, S = S_h.
TC_HOST_DEVICE inline double mc_european(const McPrepared& p, double x, double S) {
  const double e1 = p.alpha * x + p.beta;
  return (S * p.fq * erfc(e1) - p.fk * erfc(e1 + p.shift)) - p.vnow;
}

// The same with the path's volatility sig (volatility shocks).
TC_HOST_DEVICE inline double mc_european_vol(const McPrepared& p, double x, double S, double sig) {
  const double s = sig * p.sqrt_tau;
  const double d1 = (x - p.c) / s + 0.5 * s;
  const double e1 = -p.w * d1 * kMcInvSqrt2;
  return (S * p.fq * erfc(e1) - p.fk * erfc(e1 + p.w * s * kMcInvSqrt2)) - p.vnow;
}

TC_HOST_DEVICE inline double mc_intrinsic(const McPrepared& p, double S) {
  const double e = p.w * (S - p.K);
  return (e > 0.0 ? e : 0.0) - p.vnow;
}

// Cubic (4-point Lagrange) interpolation in ln S on the grid, linear in S beyond its ends.
TC_HOST_DEVICE inline double mc_grid(const McPrepared& p, double x, double S) {
  const double* g = p.g;
  const double t = (x - p.x0) * p.inv_dx;
  const int jmax = p.gn - 3;
  const double tf = floor(t);
  int j = tf < 1.0 ? 1 : (tf > jmax ? jmax : static_cast<int>(tf));
  const double f = t - j;
  const double fm = f - 1.0, fm2 = f - 2.0, fp = f + 1.0;
  const double inside = -f * fm * fm2 * (1.0 / 6.0) * g[j - 1] + 0.5 * fp * fm * fm2 * g[j] -
                        0.5 * fp * f * fm2 * g[j + 1] + fp * f * fm * (1.0 / 6.0) * g[j + 2];
  const double lo = g[0] + p.slope_lo * (S - p.s_lo);
  const double hi = g[p.gn - 1] + p.slope_hi * (S - p.s_hi);
  return (x < p.x0 ? lo : (x > p.x_hi ? hi : inside)) - p.vnow;
}

// The path's shock scale for Student-t: sqrt((dof - 2) / W), W the sum of squares of the dof
// normals zt (1 for the normal model, dof == 0).
TC_HOST_DEVICE inline double mc_t_scale(const double* zt, int dof) {
  if (dof <= 0) return 1.0;
  double W = 0.0;
  for (int k = 0; k < dof; ++k) W += zt[k] * zt[k];
  return sqrt(static_cast<double>(dof - 2) / W);
}

}  // namespace tradecore::risk
