// Andersen-Lake-Offengenden (2016) fixed-point method for the exercise boundary of an American
// put, written from the published method:
//   * the boundary B(tau) of a unit-strike put is represented through
//     H(sqrt(tau)) = ln(B(tau) / X)^2, X = B(0+) = min(1, r/q), interpolated by a Chebyshev
//     polynomial in sqrt(tau) on Chebyshev-Gauss-Lobatto nodes (H is smooth in sqrt(tau));
//   * the boundary solves B(tau) = exp(-(r-q) tau) N(tau, B) / D(tau, B) with
//       FP-A (smooth pasting):
//         N = phi(d-(tau, B/1)) / (v sqrt(tau)) + r int_0^tau e^{ru} phi(d-(tau-u, B(tau)/B(u)))
//             / (v sqrt(tau-u)) du
//         D = phi(d+) / (v sqrt(tau)) + Phi(d+) + q int_0^tau e^{qu} [Phi(d+(tau-u, .))
//             + phi(d+(tau-u, .)) / (v sqrt(tau-u))] du
//       FP-B (value matching):
//         N = Phi(d-) + r int_0^tau e^{ru} Phi(d-(tau-u, .)) du
//         D = Phi(d+) + q int_0^tau e^{qu} Phi(d+(tau-u, .)) du
//     iterated from Li's QD+ boundary (Jacobi style: every node from the previous interpolant);
//     the integrals use z = sqrt(tau - u) (removing the 1/sqrt singularity) and tanh-sinh (or
//     Gauss-Legendre) points in z;
//   * the price is the European price plus the early-exercise premium
//       int_0^T [ r e^{-r(T-u)} Phi(-d-(T-u, S/B(u))) - q S e^{-q(T-u)} Phi(-d+(T-u, S/B(u))) ] du.
// Speed (docs/benchmarks_american.md): everything that does not depend on the boundary (points,
// discount factors) is tabulated once per option; each iteration evaluates ln B at all nodes'
// points in one Clenshaw pass vectorised across points, the integrands with libmvec exp and the
// erfcx polynomial of math/normal.hpp, and the node updates vectorised across nodes; the QD+
// start is solved for all nodes at once.
#if defined(TC_HAVE_LIBMVEC)
#define __FAST_MATH__ 1
#include <math.h>
#undef __FAST_MATH__
#else
#include <math.h>
#endif

#include <algorithm>
#include <cmath>
#include <vector>

#include "american_detail.hpp"
#include "tradecore/math/normal.hpp"

namespace tradecore::pricing::detail {

void gauss_legendre(int n, std::vector<double>& x, std::vector<double>& w) {
  x.assign(static_cast<std::size_t>(n), 0.0);
  w.assign(static_cast<std::size_t>(n), 0.0);
  for (int i = 0; i < (n + 1) / 2; ++i) {
    double z = std::cos(kPi * (i + 0.75) / (n + 0.5));
    double dp = 0.0;
    for (int it = 0; it < 100; ++it) {
      double p0 = 1.0, p1 = z;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1.0;
      dp = n * (z * p1 - p0) / (z * z - 1.0);
      const double dz = p1 / dp;
      z -= dz;
      if (std::abs(dz) < 1e-16) break;
    }
    double p0 = 1.0, p1 = z;
    for (int k = 2; k <= n; ++k) {
      const double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
      p0 = p1;
      p1 = p2;
    }
    dp = n * (z * p1 - p0) / (z * z - 1.0);
    const double wi = 2.0 / ((1.0 - z * z) * dp * dp);
    x[static_cast<std::size_t>(i)] = -z;
    x[static_cast<std::size_t>(n - 1 - i)] = z;
    w[static_cast<std::size_t>(i)] = wi;
    w[static_cast<std::size_t>(n - 1 - i)] = wi;
  }
}

double bsm_price(double S, double K, double T, double r, double q, double v, double w) noexcept {
  const double sT = v * std::sqrt(T);
  const double d1 = (std::log(S / K) + (r - q + 0.5 * v * v) * T) / sT;
  const double d2 = d1 - sT;
  return w * (S * std::exp(-q * T) * norm_cdf(w * d1) - K * std::exp(-r * T) * norm_cdf(w * d2));
}

namespace {
constexpr int kMaxQuad = 256;
constexpr double kTanhSinhRange = 3.0;
}  // namespace

void quadrature_rule(AloRule rule, int n, std::vector<double>& frac, std::vector<double>& comp,
                     std::vector<double>& w) {
  const auto sz = static_cast<std::size_t>(n);
  frac.resize(sz);
  comp.resize(sz);
  w.resize(sz);
  if (rule == AloRule::GaussLegendre) {
    std::vector<double> y;
    gauss_legendre(n, y, w);
    for (std::size_t j = 0; j < sz; ++j) {
      frac[j] = 0.5 * (1.0 + y[j]);
      comp[j] = 0.5 * (1.0 - y[j]);
      w[j] *= 0.5;
    }
    return;
  }
  // tanh-sinh on [0, 1]: x = 1 / (1 + e^{-pi sinh t}), dx/dt = pi cosh t x (1 - x), with the
  // complement 1 - x computed directly (the rule clusters points at both ends).
  const double tmax = kTanhSinhRange;
  const double h = 2.0 * tmax / (n - 1);
  for (std::size_t j = 0; j < sz; ++j) {
    const double tk = -tmax + h * static_cast<double>(j);
    const double g = kPi * std::sinh(tk);
    const double x = 1.0 / (1.0 + std::exp(-g)), cx = 1.0 / (1.0 + std::exp(g));
    frac[j] = x;
    comp[j] = cx;
    w[j] = h * kPi * std::cosh(tk) * x * cx;
  }
}

AloTables make_alo_tables(const AmericanSettings& s) {
  AloTables t;
  t.n = s.alo_nodes;
  t.l = s.alo_quadrature;
  t.m = s.alo_iterations;
  t.p = s.alo_price_quadrature;
  t.equation = s.alo_equation;
  const int n = t.n;
  const auto sz = static_cast<std::size_t>(n + 1);
  t.node_xi.resize(sz);
  for (int i = 0; i <= n; ++i) t.node_xi[static_cast<std::size_t>(i)] = -std::cos(kPi * i / n);
  // a_k = (2/n) sum''_i H_i T_k(xi_i); the interpolant is sum''_k a_k T_k (first/last halved).
  t.cheb.resize(sz * sz);
  for (int k = 0; k <= n; ++k) {
    for (int i = 0; i <= n; ++i) {
      const double wi = (i == 0 || i == n) ? 0.5 : 1.0;
      const double wk = (k == 0 || k == n) ? 0.5 : 1.0;
      const double tk =
          std::cos(k * std::acos(std::clamp(t.node_xi[static_cast<std::size_t>(i)], -1.0, 1.0)));
      t.cheb[static_cast<std::size_t>(k) * sz + static_cast<std::size_t>(i)] =
          (2.0 / n) * wi * wk * tk;
    }
  }
  quadrature_rule(s.alo_rule, t.l, t.fl, t.cl, t.wl);
  quadrature_rule(s.alo_rule, t.p, t.fp, t.cp, t.wp);
  t.ul.resize(t.fl.size());
  t.sl.resize(t.fl.size());
  for (std::size_t j = 0; j < t.fl.size(); ++j) {
    t.ul[j] = t.cl[j] * (1.0 + t.fl[j]);
    t.sl[j] = std::sqrt(t.ul[j]);
  }
  t.sp.resize(t.fp.size());
  for (std::size_t j = 0; j < t.fp.size(); ++j) t.sp[j] = std::sqrt(t.cp[j] * (1.0 + t.fp[j]));
  return t;
}

double AloBoundary::log_b(double z) const noexcept {
  const double xi = 2.0 * z / sqrtT - 1.0;
  double b1 = 0.0, b2 = 0.0;
  for (int k = n; k >= 1; --k) {
    const double b0 = 2.0 * xi * b1 - b2 + coef[k];
    b2 = b1;
    b1 = b0;
  }
  const double h = xi * b1 - b2 + coef[0];
  return log_x - std::sqrt(h > 0.0 ? h : 0.0);
}

namespace {

// ln B at many sqrt(u) = scale * z[j]: Clenshaw with the points in the inner loop, so that it
// vectorises across them (in chunks of kMaxQuad).
void log_b_many(const AloBoundary& b, const double* z, double scale, double* out, int count) {
  while (count > kMaxQuad) {
    log_b_many(b, z, scale, out, kMaxQuad);
    z += kMaxQuad;
    out += kMaxQuad;
    count -= kMaxQuad;
  }
  const int n = b.n;
  const double* c = b.coef;
  const double inv = 2.0 * scale / b.sqrtT;
  alignas(64) double xi2[kMaxQuad], b1[kMaxQuad], b2[kMaxQuad];
#pragma omp simd
  for (int j = 0; j < count; ++j) {
    xi2[j] = 2.0 * (inv * z[j] - 1.0);
    b1[j] = c[n];
    b2[j] = 0.0;
  }
  for (int k = n - 1; k >= 1; --k) {
    const double ck = c[k];
#pragma omp simd
    for (int j = 0; j < count; ++j) {
      const double b0 = xi2[j] * b1[j] - b2[j] + ck;
      b2[j] = b1[j];
      b1[j] = b0;
    }
  }
#pragma omp simd
  for (int j = 0; j < count; ++j) {
    const double h = 0.5 * xi2[j] * b1[j] - b2[j] + c[0];
    out[j] = b.log_x - sqrt(h > 0.0 ? h : 0.0);
  }
}

// Li's (2005) QD+ approximation of the put boundary (unit strike) at the times tau[0..count),
// solved by secant steps from the Barone-Adesi-Whaley seed; the starting boundary of the
// fixed-point iterations. Vectorised across the points: every lane takes the same steps (at most
// 5, fewer where all converge), a converged lane is frozen, and a lane whose iterate leaves
// (0, X) falls back to its seed. count <= kAloMaxNodes.
void qd_plus_boundary_many(double r, double q, double v, double x, const double* tau, double* out,
                           int count) {
  const double v2 = v * v;
  const double alpha = 2.0 * r / v2, beta = 2.0 * (r - q) / v2;
  const double lam_inf =
      0.5 * (-(beta - 1.0) - std::sqrt((beta - 1.0) * (beta - 1.0) + 4.0 * alpha));
  const double b_inf = lam_inf / (lam_inf - 1.0);
  const double mu = r - q + 0.5 * v2;
  constexpr int kN = kAloMaxNodes;
  alignas(64) double seed[kN], vs[kN], st[kN], hh[kN], lam[kN], lamp[kN], dr[kN], dq[kN], den[kN],
      k1[kN], s0[kN], s1[kN], f0[kN], f1[kN];
  alignas(64) bool active[kN], failed[kN];
#pragma omp simd
  for (int i = 0; i < count; ++i) {
    const double ti = tau[i], sti = sqrt(ti);
    // The seed between B(0+) = X and the perpetual boundary.
    double hs = ((r - q) * ti - 2.0 * v * sti) * x / (x - b_inf);
    hs = hs < 0.0 ? hs : 0.0;
    seed[i] = b_inf + (x - b_inf) * exp(hs);
    st[i] = sti;
    vs[i] = v * sti;
    const double h = -expm1(-r * ti);
    const double root = sqrt((beta - 1.0) * (beta - 1.0) + 4.0 * alpha / h);
    hh[i] = h;
    lam[i] = 0.5 * (-(beta - 1.0) - root);
    lamp[i] = alpha / (h * h * root);
    dr[i] = exp(-r * ti);
    dq[i] = exp(-q * ti);
    den[i] = 2.0 * lam[i] + beta - 1.0;
    k1[i] = (1.0 - h) * alpha / den[i];
  }
  auto F = [&](const double* S, double* f) {
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      const double Si = S[i];
      const double dp = (log(Si) + mu * tau[i]) / vs[i], dm = dp - vs[i];
      const double Np = 0.5 * erfc(dp * kInvSqrt2), Nm = 0.5 * erfc(dm * kInvSqrt2);
      const double pdf = kInvSqrt2Pi * exp(-0.5 * dp * dp);
      const double p = dr[i] * Nm - Si * dq[i] * Np;
      const double theta =
          r * dr[i] * Nm - q * Si * dq[i] * Np - 0.5 * v * Si * dq[i] * pdf / st[i];
      const double gap = 1.0 - Si - p;
      const double c0 = -k1[i] * (1.0 / hh[i] - theta / (r * gap * dr[i]) + lamp[i] / den[i]);
      f[i] = (1.0 - dq[i] * Np) * Si + (lam[i] + c0) * gap;
    }
  };
  for (int i = 0; i < count; ++i) {
    s0[i] = seed[i];
    s1[i] = 0.98 * seed[i];
    active[i] = true;
    failed[i] = false;
  }
  F(s0, f0);
  F(s1, f1);
  // Secant iterations (a starting guess needs no more than a few digits).
  for (int it = 0; it < 5; ++it) {
    int live = 0;
    for (int i = 0; i < count; ++i) {
      if (!active[i]) continue;
      if (f1[i] == f0[i]) {
        active[i] = false;
        continue;
      }
      const double next = s1[i] - f1[i] * (s1[i] - s0[i]) / (f1[i] - f0[i]);
      if (!(next > 0.0 && next < x)) {
        failed[i] = true;
        active[i] = false;
        continue;
      }
      s0[i] = s1[i];
      f0[i] = f1[i];
      s1[i] = next;
      if (std::abs(s1[i] - s0[i]) < 1e-7 * s1[i]) {
        active[i] = false;
        continue;
      }
      ++live;
    }
    if (live == 0) break;
    alignas(64) double fn[kN];
    F(s1, fn);
    for (int i = 0; i < count; ++i)
      if (active[i]) f1[i] = fn[i];
  }
  for (int i = 0; i < count; ++i) out[i] = failed[i] ? seed[i] : s1[i];
}

void coefficients(const AloTables& t, const double* H, double* coef) {
  const int n = t.n;
  const auto sz = static_cast<std::size_t>(n + 1);
  for (int k = 0; k <= n; ++k) {
    double a = 0.0;
    const double* row = t.cheb.data() + static_cast<std::size_t>(k) * sz;
    for (int i = 0; i <= n; ++i) a += row[i] * H[i];
    coef[k] = a;
  }
}

}  // namespace

void alo_solve(const AloTables& t, double r, double q, double v, double T, AloBoundary& b) {
  const int n = t.n, l = t.l;
  b.r = r;
  b.q = q;
  b.v = v;
  b.T = T;
  b.sqrtT = std::sqrt(T);
  const double x = q > r ? r / q : 1.0;
  b.log_x = std::log(x);
  b.n = n;
  double H[kAloMaxNodes + 1];
  double log_bt[kAloMaxNodes + 1];
  double zt[kAloMaxNodes + 1];
  double tau_n[kAloMaxNodes], b0[kAloMaxNodes];
  for (int i = 0; i <= n; ++i) {
    zt[i] = 0.5 * b.sqrtT * (1.0 + t.node_xi[static_cast<std::size_t>(i)]);
    if (i > 0) tau_n[i - 1] = zt[i] * zt[i];
  }
  qd_plus_boundary_many(r, q, v, x, tau_n, b0, n);
  for (int i = 0; i <= n; ++i) {
    log_bt[i] = std::log(i == 0 ? x : b0[i - 1]);
    const double lh = log_bt[i] - b.log_x;
    H[i] = lh * lh;
  }
  H[0] = 0.0;
  log_bt[0] = b.log_x;
  coefficients(t, H, b.coef);

  const double v2h = 0.5 * v * v, inv_v = 1.0 / v;
  const bool fp_a = t.equation == AloEquation::FpA;
  // Everything of the boundary integrals that does not depend on the boundary, per node i and
  // point j, computed once per option (the iterations only redo what the boundary changes):
  // z = sqrt(tau - u) = st f, sqrt(u) = st sqrt((1 - f)(1 + f)), 1 / (v z), and the factors
  // r e^{ru} (2/v) | r e^{ru} 2z and q e^{qu} of the integrands (FP-A | FP-B).
  const std::size_t lz = static_cast<std::size_t>(l);
  const std::size_t nl = static_cast<std::size_t>(n) * lz;
  thread_local std::vector<double> work;
  if (work.size() < 6 * nl) work.resize(6 * nl);
  double* const z_all = work.data();
  double* const su_all = z_all + nl;
  double* const ivz_all = su_all + nl;
  double* const fn_all = ivz_all + nl;
  double* const fd_all = fn_all + nl;
  double* const lbu_all = fd_all + nl;
  for (int i = 1; i <= n; ++i) {
    const double st = zt[i], tau = st * st;
    const std::size_t o = static_cast<std::size_t>(i - 1) * lz;
    const double* fl = t.fl.data();
    const double* sl = t.sl.data();
    const double* ul = t.ul.data();
#pragma omp simd
    for (int j = 0; j < l; ++j) {
      const double z = st * fl[j], u = tau * ul[j];
      z_all[o + j] = z;
      su_all[o + j] = st * sl[j];
      ivz_all[o + j] = inv_v / z;
      fn_all[o + j] = r * exp(r * u) * (fp_a ? 2.0 * inv_v : 2.0 * z);
      fd_all[o + j] = q * exp(q * u) * (fp_a ? 1.0 : 2.0 * z);
    }
  }
  const double* wl = t.wl.data();
  alignas(64) double in_n[kAloMaxNodes], id_n[kAloMaxNodes];
  for (int it = 0; it < t.m; ++it) {
    // ln B(u) at the points of every node from the current interpolant (one vectorised pass).
    log_b_many(b, su_all, 1.0, lbu_all, static_cast<int>(nl));
    for (int i = 1; i <= n; ++i) {
      const double lbt = log_bt[i];
      const std::size_t o = static_cast<std::size_t>(i - 1) * lz;
      const double* zz = z_all + o;
      const double* ivz = ivz_all + o;
      const double* fn = fn_all + o;
      const double* fd = fd_all + o;
      const double* lbu = lbu_all + o;
      double in = 0.0, id = 0.0;
      if (fp_a) {
        // Phi(d+) from erfcx and the density already at hand: one exp per point besides the
        // density of d-.
#pragma omp simd reduction(+ : in, id)
        for (int j = 0; j < l; ++j) {
          const double z = zz[j], s = z * z;
          const double dp = (lbt - lbu[j] + (r - q + v2h) * s) * ivz[j];
          const double dm = dp - v * z;
          const double ep = exp(-0.5 * dp * dp);
          const double pdf_m = kInvSqrt2Pi * exp(-0.5 * dm * dm);
          const double tail = 0.5 * math::erfcx_nonneg(std::abs(dp) * kInvSqrt2) * ep;
          const double cdf_p = dp < 0.0 ? tail : 1.0 - tail;
          in += wl[j] * fn[j] * pdf_m;
          id += wl[j] * fd[j] * (2.0 * z * cdf_p + kInvSqrt2Pi * ep * (2.0 * inv_v));
        }
      } else {
#pragma omp simd reduction(+ : in, id)
        for (int j = 0; j < l; ++j) {
          const double z = zz[j], s = z * z;
          const double dp = (lbt - lbu[j] + (r - q + v2h) * s) * ivz[j];
          const double dm = dp - v * z;
          in += wl[j] * fn[j] * 0.5 * erfc(-dm * kInvSqrt2);
          id += wl[j] * fd[j] * 0.5 * erfc(-dp * kInvSqrt2);
        }
      }
      in_n[i - 1] = in * zt[i];
      id_n[i - 1] = id * zt[i];
    }
    // The new boundary at every node (Jacobi: each from the previous interpolant), vectorised.
#pragma omp simd
    for (int i = 1; i <= n; ++i) {
      const double st = zt[i], tau = st * st, lbt = log_bt[i];
      const double vs = v * st;
      const double dp0 = (lbt + (r - q + v2h) * tau) / vs, dm0 = dp0 - vs;
      double N, D;
      if (fp_a) {
        N = kInvSqrt2Pi * exp(-0.5 * dm0 * dm0) / vs + in_n[i - 1];
        D = kInvSqrt2Pi * exp(-0.5 * dp0 * dp0) / vs + 0.5 * erfc(-dp0 * kInvSqrt2) + id_n[i - 1];
      } else {
        N = 0.5 * erfc(-dm0 * kInvSqrt2) + in_n[i - 1];
        D = 0.5 * erfc(-dp0 * kInvSqrt2) + id_n[i - 1];
      }
      double lb_new = -(r - q) * tau + log(N / D);
      lb_new = lb_new < b.log_x ? lb_new : b.log_x;  // B <= X (also catches NaN)
      log_bt[i] = lb_new;
    }
    for (int i = 0; i <= n; ++i) {
      const double lh = log_bt[i] - b.log_x;
      H[i] = lh * lh;
    }
    coefficients(t, H, b.coef);
  }
}

double alo_unit_put(const AloTables& t, const AloBoundary& b, double x) noexcept {
  const double r = b.r, q = b.q, v = b.v, T = b.T, sT = b.sqrtT;
  const double lx = std::log(x);
  if (lx <= b.log_b(sT)) return 1.0 - x;
  const int p = t.p;
  const double v2h = 0.5 * v * v;
  alignas(64) double lbu[kMaxQuad];
  const double* fp = t.fp.data();
  const double* wp = t.wp.data();
  log_b_many(b, t.sp.data(), sT, lbu, p);
  double prem = 0.0;
#pragma omp simd reduction(+ : prem)
  for (int j = 0; j < p; ++j) {
    const double z = sT * fp[j], s = z * z;
    const double dp = (lx - lbu[j] + (r - q + v2h) * s) / (v * z);
    const double dm = dp - v * z;
    prem += wp[j] * 2.0 * z *
            (r * exp(-r * s) * 0.5 * erfc(dm * kInvSqrt2) -
             q * x * exp(-q * s) * 0.5 * erfc(dp * kInvSqrt2));
  }
  prem *= sT;
  const double value = bsm_price(x, 1.0, T, r, q, v, -1.0) + prem;
  return std::max(value, 1.0 - x);
}

}  // namespace tradecore::pricing::detail
