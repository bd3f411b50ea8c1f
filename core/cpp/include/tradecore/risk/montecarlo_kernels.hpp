#pragma once
// The per-path formulas of the Monte-Carlo VaR kernel (tradecore/risk/montecarlo.hpp), written
// once for the CPU (inlined into `omp simd` loops, libmvec's exp/erfc) and the GPU (CUDA's
// libdevice): per-instrument constants hoisted by mc_prepare, then a branch-light value per path.
#include <math.h>

#include <cstddef>
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
  // kMcGrid: the nodes (gny rows of gn), and the linear-in-S extrapolation beyond the ends of
  // a row: V = g[0] + (g[1] - g[0]) inv_ds_lo (S - s_lo) below, likewise above.
  const double* g;
  int gn, gny;
  double x0, inv_dx, x_hi;
  double s_lo, inv_ds_lo, s_hi, inv_ds_hi;
  double y0, inv_dy;
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
    p.g = grid;
    p.gn = in.grid_size[i];
    p.gny = in.grid_vsize ? in.grid_vsize[i] : 1;
    p.x0 = in.grid_x0[i];
    const double dx = in.grid_dx[i];
    p.inv_dx = 1.0 / dx;
    p.x_hi = p.x0 + (p.gn - 1) * dx;
    p.s_lo = exp(p.x0);
    p.inv_ds_lo = 1.0 / (exp(p.x0 + dx) - p.s_lo);
    p.s_hi = exp(p.x_hi);
    p.inv_ds_hi = 1.0 / (p.s_hi - exp(p.x_hi - dx));
    if (p.gny > 1) {
      p.y0 = in.grid_y0[i];
      p.inv_dy = 1.0 / in.grid_dy[i];
    }
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

// 4-point Lagrange interpolation at offset f from node j, on nodes j-1..j+2 of g. (Scalars
// only, no arrays: GCC vectorises the callers' path loops with gathers.)
TC_HOST_DEVICE inline double mc_cubic(const double* g, long long j, double f) {
  const double fm = f - 1.0, fm2 = f - 2.0, fp = f + 1.0;
  return -f * fm * fm2 * (1.0 / 6.0) * g[j - 1] + 0.5 * fp * fm * fm2 * g[j] -
         0.5 * fp * f * fm2 * g[j + 1] + fp * f * fm * (1.0 / 6.0) * g[j + 2];
}

// The interval of grid coordinate t (in nodes) on n nodes: floor(t) clamped to [1, n - 3].
TC_HOST_DEVICE inline double mc_cubic_node(double t, int n) {
  const double tf = floor(t), jmax = n - 3.0;
  return tf < 1.0 ? 1.0 : (tf > jmax ? jmax : tf);
}

// One row of the grid at x = ln S (node j, offset f): cubic in x inside, linear in S beyond
// the ends.
TC_HOST_DEVICE inline double mc_grid_row(const McPrepared& p, const double* g, double x, double S,
                                         long long j, double f) {
  const double inside = mc_cubic(g, j, f);
  const double lo = g[0] + (g[1] - g[0]) * p.inv_ds_lo * (S - p.s_lo);
  const double hi = g[p.gn - 1] + (g[p.gn - 1] - g[p.gn - 2]) * p.inv_ds_hi * (S - p.s_hi);
  return x < p.x0 ? lo : (x > p.x_hi ? hi : inside);
}

// Cubic (4-point Lagrange) interpolation in ln S on a spot grid, linear in S beyond its ends.
TC_HOST_DEVICE inline double mc_grid(const McPrepared& p, double x, double S) {
  const double t = (x - p.x0) * p.inv_dx;
  const double jf = mc_cubic_node(t, p.gn);
  return mc_grid_row(p, p.g, x, S, static_cast<long long>(jf), t - jf) - p.vnow;
}

// On a spot x vol grid: each of the four rows around ln sigma_h = lv interpolated in ln S as
// above, then cubic in ln sigma (the coordinate clamped to the grid: flat beyond it).
TC_HOST_DEVICE inline double mc_grid2(const McPrepared& p, double x, double S, double lv) {
  const double t = (x - p.x0) * p.inv_dx;
  const double jf = mc_cubic_node(t, p.gn);
  const auto j = static_cast<long long>(jf);
  const double f = t - jf;
  double ty = (lv - p.y0) * p.inv_dy;
  const double ty_max = p.gny - 1.0;
  ty = ty < 0.0 ? 0.0 : (ty > ty_max ? ty_max : ty);
  const double kf = mc_cubic_node(ty, p.gny);
  const double fy = ty - kf;
  const double* g = p.g + static_cast<std::ptrdiff_t>(kf - 1.0) * p.gn;
  const double r0 = mc_grid_row(p, g, x, S, j, f);
  const double r1 = mc_grid_row(p, g + p.gn, x, S, j, f);
  const double r2 = mc_grid_row(p, g + 2 * p.gn, x, S, j, f);
  const double r3 = mc_grid_row(p, g + 3 * p.gn, x, S, j, f);
  const double fm = fy - 1.0, fm2 = fy - 2.0, fp = fy + 1.0;
  const double v = -fy * fm * fm2 * (1.0 / 6.0) * r0 + 0.5 * fp * fm * fm2 * r1 -
                   0.5 * fp * fy * fm2 * r2 + fp * fy * fm * (1.0 / 6.0) * r3;
  return v - p.vnow;
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
