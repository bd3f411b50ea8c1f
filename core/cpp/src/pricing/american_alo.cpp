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
// Greeks (alo_solve with an AloTangent, alo_unit_premium): the boundary's derivatives along up
// to two directions in (sigma, r, q) are carried through the QD+ start (implicit function theorem
// on its equation, with dual numbers) and through every iteration in the same vectorised passes
// as the values (forward mode: the exact derivatives of the discrete scheme); the interpolant
// and its derivatives at the points come from precomputed linear maps of the node values (the
// points' Chebyshev abscissae do not depend on T). The premium integral gives the price, its
// first and second derivatives in the spot at the fixed boundary and its derivatives along the
// directions in one pass.
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
  // Interpolation maps: entry (point at xi, node m) = sum_k cheb[k][m] T_k(xi).
  auto fill = [&](std::vector<double>& map, const std::vector<double>& xi) {
    const std::size_t rows = xi.size();
    map.assign(sz * rows, 0.0);
    std::vector<double> tk(sz);
    for (std::size_t p = 0; p < rows; ++p) {
      tk[0] = 1.0;
      if (n >= 1) tk[1] = xi[p];
      for (std::size_t k = 2; k < sz; ++k) tk[k] = 2.0 * xi[p] * tk[k - 1] - tk[k - 2];
      for (std::size_t m = 0; m < sz; ++m) {
        double a = 0.0;
        for (std::size_t k = 0; k < sz; ++k) a += t.cheb[k * sz + m] * tk[k];
        map[m * rows + p] = a;
      }
    }
  };
  std::vector<double> xi;
  for (int i = 1; i <= n; ++i) {
    for (std::size_t j = 0; j < t.sl.size(); ++j)
      xi.push_back((1.0 + t.node_xi[static_cast<std::size_t>(i)]) * t.sl[j] - 1.0);
  }
  fill(t.interp_l, xi);
  xi.clear();
  for (const double s : t.sp) xi.push_back(2.0 * s - 1.0);
  fill(t.interp_p, xi);
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

// h = map H at rows points for M sets of node values H[m][0..n] (H[m][0] = 0: node 0 sits at
// tau = 0 where H vanishes): blocks of kBlock points accumulated in registers over the nodes,
// all sets in one pass over the map.
template <int M>
void interp_many(const double* map, int n, const double* const* H, double* const* out, int rows) {
  constexpr int kBlock = 8;
  const auto stride = static_cast<std::size_t>(rows);
  int j0 = 0;
  for (; j0 + kBlock <= rows; j0 += kBlock) {
    double acc[M][kBlock] = {};
    for (int i = 1; i <= n; ++i) {
      const double* col = map + static_cast<std::size_t>(i) * stride + j0;
      for (int m = 0; m < M; ++m) {
        const double h = H[m][i];
#pragma omp simd
        for (int jj = 0; jj < kBlock; ++jj) acc[m][jj] += col[jj] * h;
      }
    }
    for (int m = 0; m < M; ++m) {
#pragma omp simd
      for (int jj = 0; jj < kBlock; ++jj) out[m][j0 + jj] = acc[m][jj];
    }
  }
  for (int j = j0; j < rows; ++j) {
    double acc[M] = {};
    for (int i = 1; i <= n; ++i) {
      const double c = map[static_cast<std::size_t>(i) * stride + static_cast<std::size_t>(j)];
      for (int m = 0; m < M; ++m) acc[m] += c * H[m][i];
    }
    for (int m = 0; m < M; ++m) out[m][j] = acc[m];
  }
}

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

// ln B at the map's points into lb, and its derivatives along the directions of tan into dlb[d]
// from the node values' derivatives dH[d]: d ln X - dh / (2 sqrt h) (d ln X where h <= 0, where
// ln B is clamped to ln X).
void log_b_tangent_many(const double* map, int n, double log_x, const double* H,
                        const AloTangent& tan, const double* const* dH, double* lb,
                        double* const* dlb, int rows) {
  const double* h[1 + kAloMaxDirs] = {H, dH[0], dH[1]};
  double* o[1 + kAloMaxDirs] = {lb, dlb[0], dlb[1]};
  if (tan.dirs == 2) {
    interp_many<3>(map, n, h, o, rows);
  } else {
    interp_many<2>(map, n, h, o, rows);
  }
#pragma omp simd
  for (int j = 0; j < rows; ++j) {
    const double v = lb[j];
    lb[j] = log_x - sqrt(v > 0.0 ? v : 0.0);
  }
  for (int d = 0; d < tan.dirs; ++d) {
    const double dlx = tan.log_x[d];
    double* out = dlb[d];
#pragma omp simd
    for (int j = 0; j < rows; ++j) {
      const double root = log_x - lb[j];
      out[j] = root > 0.0 ? dlx - 0.5 * out[j] / root : dlx;
    }
  }
}

// Li's (2005) QD+ approximation of the put boundary (unit strike) at the times tau[0..count),
// solved by secant steps from the Barone-Adesi-Whaley seed; the starting boundary of the
// fixed-point iterations. Vectorised across the points: every lane takes the same steps (at most
// 5, fewer where all converge), a converged lane is frozen, and a lane whose iterate leaves
// (0, X) falls back to its seed (seeded[i] says which did). count <= kAloMaxNodes.
void qd_plus_boundary_many(double r, double q, double v, double x, const double* tau, double* out,
                           bool* seeded, int count) {
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
  for (int i = 0; i < count; ++i) {
    out[i] = failed[i] ? seed[i] : s1[i];
    seeded[i] = failed[i];
  }
}

// Forward-mode dual numbers with N tangent components (the QD+ start's sensitivities), in their
// own namespace so that their exp/log/... (found by argument-dependent lookup) do not hide the
// double ones.
namespace ad {
template <int N>
struct Dual {
  double v;
  double d[N];
};
template <int N>
Dual<N> constant(double v) {
  Dual<N> a{v, {}};
  return a;
}
template <int N>
Dual<N> chain(const Dual<N>& a, double value, double slope) {
  Dual<N> r{value, {}};
  for (int k = 0; k < N; ++k) r.d[k] = slope * a.d[k];
  return r;
}
template <int N>
Dual<N> operator+(const Dual<N>& a, const Dual<N>& b) {
  Dual<N> r{a.v + b.v, {}};
  for (int k = 0; k < N; ++k) r.d[k] = a.d[k] + b.d[k];
  return r;
}
template <int N>
Dual<N> operator-(const Dual<N>& a, const Dual<N>& b) {
  Dual<N> r{a.v - b.v, {}};
  for (int k = 0; k < N; ++k) r.d[k] = a.d[k] - b.d[k];
  return r;
}
template <int N>
Dual<N> operator*(const Dual<N>& a, const Dual<N>& b) {
  Dual<N> r{a.v * b.v, {}};
  for (int k = 0; k < N; ++k) r.d[k] = a.d[k] * b.v + a.v * b.d[k];
  return r;
}
template <int N>
Dual<N> operator/(const Dual<N>& a, const Dual<N>& b) {
  const double q = a.v / b.v;
  Dual<N> r{q, {}};
  for (int k = 0; k < N; ++k) r.d[k] = (a.d[k] - q * b.d[k]) / b.v;
  return r;
}
template <int N>
Dual<N> operator+(const Dual<N>& a, double b) {
  return a + constant<N>(b);
}
template <int N>
Dual<N> operator+(double a, const Dual<N>& b) {
  return constant<N>(a) + b;
}
template <int N>
Dual<N> operator-(const Dual<N>& a, double b) {
  return a - constant<N>(b);
}
template <int N>
Dual<N> operator-(double a, const Dual<N>& b) {
  return constant<N>(a) - b;
}
template <int N>
Dual<N> operator-(const Dual<N>& a) {
  return constant<N>(0.0) - a;
}
template <int N>
Dual<N> operator*(double a, const Dual<N>& b) {
  return constant<N>(a) * b;
}
template <int N>
Dual<N> operator*(const Dual<N>& a, double b) {
  return a * constant<N>(b);
}
template <int N>
Dual<N> operator/(double a, const Dual<N>& b) {
  return constant<N>(a) / b;
}
template <int N>
Dual<N> operator/(const Dual<N>& a, double b) {
  return a / constant<N>(b);
}
template <int N>
Dual<N> exp(const Dual<N>& a) {
  const double e = std::exp(a.v);
  return chain(a, e, e);
}
template <int N>
Dual<N> expm1(const Dual<N>& a) {
  return chain(a, std::expm1(a.v), std::exp(a.v));
}
template <int N>
Dual<N> log(const Dual<N>& a) {
  return chain(a, std::log(a.v), 1.0 / a.v);
}
template <int N>
Dual<N> sqrt(const Dual<N>& a) {
  const double s = std::sqrt(a.v);
  return chain(a, s, 0.5 / s);
}
template <int N>
Dual<N> erfc(const Dual<N>& a) {
  return chain(a, std::erfc(a.v), -math::kTwoOverSqrtPi * std::exp(-a.v * a.v));
}

}  // namespace ad
using ad::constant;
using ad::Dual;

// Li's QD+ function whose root in S is the boundary at time tau (as in qd_plus_boundary_many).
template <class D>
D qd_plus_f(const D& S, const D& r, const D& q, const D& v, double tau) {
  const D v2 = v * v;
  const D alpha = 2.0 * r / v2, beta = 2.0 * (r - q) / v2;
  const double st = std::sqrt(tau);
  const D vs = v * st;
  const D h = -expm1(-r * tau);
  const D root = sqrt((beta - 1.0) * (beta - 1.0) + 4.0 * alpha / h);
  const D lam = 0.5 * (-(beta - 1.0) - root);
  const D lamp = alpha / (h * h * root);
  const D dr = exp(-r * tau), dq = exp(-q * tau);
  const D den = 2.0 * lam + beta - 1.0;
  const D k1 = (1.0 - h) * alpha / den;
  const D mu = r - q + 0.5 * v2;
  const D dp = (log(S) + mu * tau) / vs, dm = dp - vs;
  const D Np = 0.5 * erfc(dp * kInvSqrt2), Nm = 0.5 * erfc(dm * kInvSqrt2);
  const D pdf = kInvSqrt2Pi * exp(-0.5 * dp * dp);
  const D p = dr * Nm - S * dq * Np;
  const D theta = r * dr * Nm - q * S * dq * Np - 0.5 * v * S * dq * pdf / st;
  const D gap = 1.0 - S - p;
  const D c0 = -k1 * (1.0 / h - theta / (r * gap * dr) + lamp / den);
  return (1.0 - dq * Np) * S + (lam + c0) * gap;
}

// The seed of qd_plus_boundary_many at time tau (x = B(0+)).
template <class D>
D qd_plus_seed(const D& r, const D& q, const D& v, const D& x, double tau) {
  const D v2 = v * v;
  const D alpha = 2.0 * r / v2, beta = 2.0 * (r - q) / v2;
  const D lam_inf = 0.5 * (-(beta - 1.0) - sqrt((beta - 1.0) * (beta - 1.0) + 4.0 * alpha));
  const D b_inf = lam_inf / (lam_inf - 1.0);
  const double st = std::sqrt(tau);
  D hs = ((r - q) * tau - 2.0 * v * st) * x / (x - b_inf);
  if (!(hs.v < 0.0)) hs = 0.0 * hs;
  return b_inf + (x - b_inf) * exp(hs);
}

// d ln B0 / d(direction) of the QD+ start at each node: from the implicit function theorem on
// F(B0; r, q, v) = 0 where the secant iteration found the root, from the seed where it fell back.
void qd_plus_tangent(double r, double q, double v, const double* tau, const double* b0,
                     const bool* seeded, int count, const AloTangent& tan, int stride,
                     double* out) {
  using D = Dual<3>;  // components: d/dS, direction 0, direction 1
  D rd = constant<3>(r), qd = constant<3>(q), vd = constant<3>(v);
  for (int d = 0; d < tan.dirs; ++d) {
    rd.d[1 + d] = tan.dir[d].dr;
    qd.d[1 + d] = tan.dir[d].dq;
    vd.d[1 + d] = tan.dir[d].dv;
  }
  const D xd = q > r ? rd / qd : constant<3>(1.0);
  for (int i = 0; i < count; ++i) {
    if (seeded[i]) {
      const D s = qd_plus_seed(rd, qd, vd, xd, tau[i]);
      for (int d = 0; d < tan.dirs; ++d) out[d * stride + i] = s.d[1 + d] / b0[i];
      continue;
    }
    D S = constant<3>(b0[i]);
    S.d[0] = 1.0;
    const D f = qd_plus_f(S, rd, qd, vd, tau[i]);
    for (int d = 0; d < tan.dirs; ++d) {
      const double ds = f.d[0] != 0.0 ? -f.d[1 + d] / f.d[0] : 0.0;
      out[d * stride + i] = std::isfinite(ds) ? ds / b0[i] : 0.0;
    }
  }
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

namespace {

// alo_solve with (kTangents) or without tangents: the price-only instance compiles without the
// tangent code.
template <bool kTangents>
void alo_solve_impl(const AloTables& t, double r, double q, double v, double T, AloBoundary& b,
                    AloTangent* tan) {
  const int n = t.n, l = t.l;
  const int nd = kTangents ? tan->dirs : 0;
  b.r = r;
  b.q = q;
  b.v = v;
  b.T = T;
  b.sqrtT = std::sqrt(T);
  const double x = q > r ? r / q : 1.0;
  b.log_x = std::log(x);
  b.n = n;
  double* const H = b.h;
  double log_bt[kAloMaxNodes + 1];
  double zt[kAloMaxNodes + 1];
  double tau_n[kAloMaxNodes] = {}, b0[kAloMaxNodes];
  bool seeded[kAloMaxNodes];
  for (int i = 0; i <= n; ++i) {
    zt[i] = 0.5 * b.sqrtT * (1.0 + t.node_xi[static_cast<std::size_t>(i)]);
    if (i > 0) tau_n[i - 1] = zt[i] * zt[i];
  }
  qd_plus_boundary_many(r, q, v, x, tau_n, b0, seeded, n);
  for (int i = 0; i <= n; ++i) {
    log_bt[i] = std::log(i == 0 ? x : b0[i - 1]);
    const double lh = log_bt[i] - b.log_x;
    H[i] = lh * lh;
  }
  H[0] = 0.0;
  log_bt[0] = b.log_x;
  coefficients(t, H, b.coef);

  // Tangents along each direction: d ln B at the nodes (dlbt[d][i]) and dH there (tan->h).
  constexpr int kS = kAloMaxNodes + 1;
  double dlbt[kAloMaxDirs][kS];
  if (nd > 0) {
    qd_plus_tangent(r, q, v, tau_n, b0, seeded, n, *tan, kS, &dlbt[0][1]);
    for (int d = 0; d < nd; ++d) {
      const AloDirection& e = tan->dir[d];
      tan->log_x[d] = q > r ? e.dr / r - e.dq / q : 0.0;
      dlbt[d][0] = tan->log_x[d];
    }
  }
  // dH_i = 2 (ln B_i - ln X)(d ln B_i - d ln X).
  auto tangent_nodes = [&]() {
    for (int d = 0; d < nd; ++d) {
      double* dH = tan->h[d];
      for (int i = 0; i <= n; ++i)
        dH[i] = 2.0 * (log_bt[i] - b.log_x) * (dlbt[d][i] - tan->log_x[d]);
      dH[0] = 0.0;
    }
  };
  tangent_nodes();

  const double v2h = 0.5 * v * v, inv_v = 1.0 / v;
  const bool fp_a = t.equation == AloEquation::FpA;
  // Everything of the boundary integrals that does not depend on the boundary, per node i and
  // point j, computed once per option (the iterations only redo what the boundary changes):
  // z = sqrt(tau - u) = st f, sqrt(u) = st sqrt((1 - f)(1 + f)), 1 / (v z), and the factors
  // r e^{ru} (2/v) | r e^{ru} 2z and q e^{qu} of the integrands (FP-A | FP-B). With tangents
  // also d/dr (r e^{ru} c) = (1 + ru) e^{ru} c and d/dq (q e^{qu} c) = (1 + qu) e^{qu} c, and
  // room for dh per direction.
  const std::size_t lz = static_cast<std::size_t>(l);
  const std::size_t nl = static_cast<std::size_t>(n) * lz;
  thread_local std::vector<double> work;
  const std::size_t arrays = nd > 0 ? 6 + 2 + kAloMaxDirs : 6;
  if (work.size() < arrays * nl) work.resize(arrays * nl);
  double* const z_all = work.data();
  double* const su_all = z_all + nl;
  double* const ivz_all = su_all + nl;
  double* const fn_all = ivz_all + nl;
  double* const fd_all = fn_all + nl;
  double* const lbu_all = fd_all + nl;
  // Tangent-only arrays: d fn / dr, d fd / dq and dh (the interpolant's derivative) for each
  // direction.
  double* const gn_all = lbu_all + nl;
  double* const gd_all = gn_all + nl;
  double* const dh_all = gd_all + nl;
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
    if (nd > 0) {
#pragma omp simd
      for (int j = 0; j < l; ++j) {
        const double z = st * fl[j], u = tau * ul[j];
        gn_all[o + j] = (1.0 + r * u) * exp(r * u) * (fp_a ? 2.0 * inv_v : 2.0 * z);
        gd_all[o + j] = (1.0 + q * u) * exp(q * u) * (fp_a ? 1.0 : 2.0 * z);
      }
    }
  }
  const double* wl = t.wl.data();
  alignas(64) double in_n[kAloMaxNodes], id_n[kAloMaxNodes];
  double din_n[kAloMaxDirs][kAloMaxNodes], did_n[kAloMaxDirs][kAloMaxNodes];
  for (int it = 0; it < t.m; ++it) {
    // ln B(u) at the points of every node from the current interpolant (one vectorised pass).
    if (nd > 0) {
      // ln B(u) and, per direction, dh (the derivative of the interpolant) at the points.
      const double* h[1 + kAloMaxDirs] = {H, tan->h[0], tan->h[1]};
      double* o[1 + kAloMaxDirs] = {lbu_all, dh_all, dh_all + nl};
      if (nd == 2) {
        interp_many<3>(t.interp_l.data(), n, h, o, static_cast<int>(nl));
      } else {
        interp_many<2>(t.interp_l.data(), n, h, o, static_cast<int>(nl));
      }
      const double lx = b.log_x;
#pragma omp simd
      for (std::size_t j = 0; j < nl; ++j) {
        const double hj = lbu_all[j];
        lbu_all[j] = lx - sqrt(hj > 0.0 ? hj : 0.0);
      }
    } else {
      log_b_many(b, su_all, 1.0, lbu_all, static_cast<int>(nl));
    }
    for (int i = 1; i <= n; ++i) {
      const double lbt = log_bt[i];
      const std::size_t o = static_cast<std::size_t>(i - 1) * lz;
      const double* zz = z_all + o;
      const double* ivz = ivz_all + o;
      const double* fn = fn_all + o;
      const double* fd = fd_all + o;
      const double* lbu = lbu_all + o;
      double in = 0.0, id = 0.0;
      if (nd > 0) {
        // The same integrands as below, and their tangents along both directions in the same
        // pass (with one direction, the second is zero). Per point, with
        // d(d+) = (d ln B_i - d ln B(u) + dmu z^2) / (v z) - d+ dv / v (dmu = dr - dq + v dv),
        // d ln B(u) = d ln X - dh / (2 sqrt h) (d ln X where h <= 0):
        //   d in = P1 d(d+) + P2 dr + P3 dv,   d id = R1 d(d+) + R2 dq + R3 dv, where
        //   FP-A: P1 = -w fn phi(d-) d-, P2 = w gn phi(d-), P3 = w fn phi(d-) (d- z - 1/v),
        //         R1 = w fd phi(d+) (2z - 2 d+ / v), R2 = w gd Q, R3 = -2 w fd phi(d+) / v^2
        //         (Q = 2z Phi(d+) + 2 phi(d+) / v, the FP-A integrand of id over fd);
        //   FP-B: P1 = w fn phi(d-), P2 = w gn Phi(d-), P3 = -w fn phi(d-) z,
        //         R1 = w fd phi(d+), R2 = w gd Phi(d+), R3 = 0.
        const double* gn = gn_all + o;
        const double* gd = gd_all + o;
        const AloDirection e0 = tan->dir[0], e1 = nd > 1 ? tan->dir[1] : AloDirection{};
        const double dlb0 = dlbt[0][i] - tan->log_x[0];
        const double dlb1 = nd > 1 ? dlbt[1][i] - tan->log_x[1] : 0.0;
        const double dmu0 = e0.dr - e0.dq + v * e0.dv, dmu1 = e1.dr - e1.dq + v * e1.dv;
        const double dvv0 = e0.dv * inv_v, dvv1 = e1.dv * inv_v;
        const double* dh0 = dh_all + o;
        const double* dh1 = nd > 1 ? dh_all + nl + o : dh0;
        const double lx = b.log_x, mu = r - q + v2h;
        double in0 = 0.0, in1 = 0.0, id0 = 0.0, id1 = 0.0;
        if (fp_a) {
#pragma omp simd reduction(+ : in, id, in0, in1, id0, id1)
          for (int j = 0; j < l; ++j) {
            const double z = zz[j], s = z * z;
            const double dp = (lbt - lbu[j] + mu * s) * ivz[j];
            const double dm = dp - v * z;
            const double ep = exp(-0.5 * dp * dp);
            const double pdf_m = kInvSqrt2Pi * exp(-0.5 * dm * dm);
            const double tail = 0.5 * math::erfcx_nonneg(std::abs(dp) * kInvSqrt2) * ep;
            const double cdf_p = dp < 0.0 ? tail : 1.0 - tail;
            const double pdf_p = kInvSqrt2Pi * ep;
            const double Q = 2.0 * z * cdf_p + pdf_p * (2.0 * inv_v);
            in += wl[j] * fn[j] * pdf_m;
            id += wl[j] * fd[j] * Q;
            const double wfm = wl[j] * fn[j] * pdf_m, wfp = wl[j] * fd[j] * pdf_p;
            const double P1 = -wfm * dm, P2 = wl[j] * gn[j] * pdf_m, P3 = wfm * (dm * z - inv_v);
            const double R1 = wfp * (2.0 * z - 2.0 * dp * inv_v), R2 = wl[j] * gd[j] * Q;
            const double R3 = -2.0 * wfp * inv_v * inv_v;
            const double root = lx - lbu[j];
            const double ir = root > 0.0 ? 0.5 / root : 0.0;
            const double ddp0 = (dlb0 + ir * dh0[j] + dmu0 * s) * ivz[j] - dp * dvv0;
            const double ddp1 = (dlb1 + ir * dh1[j] + dmu1 * s) * ivz[j] - dp * dvv1;
            in0 += P1 * ddp0 + P2 * e0.dr + P3 * e0.dv;
            id0 += R1 * ddp0 + R2 * e0.dq + R3 * e0.dv;
            in1 += P1 * ddp1 + P2 * e1.dr + P3 * e1.dv;
            id1 += R1 * ddp1 + R2 * e1.dq + R3 * e1.dv;
          }
        } else {
#pragma omp simd reduction(+ : in, id, in0, in1, id0, id1)
          for (int j = 0; j < l; ++j) {
            const double z = zz[j], s = z * z;
            const double dp = (lbt - lbu[j] + mu * s) * ivz[j];
            const double dm = dp - v * z;
            const double cdf_m = 0.5 * erfc(-dm * kInvSqrt2);
            const double cdf_p = 0.5 * erfc(-dp * kInvSqrt2);
            in += wl[j] * fn[j] * cdf_m;
            id += wl[j] * fd[j] * cdf_p;
            const double pdf_m = kInvSqrt2Pi * exp(-0.5 * dm * dm);
            const double pdf_p = kInvSqrt2Pi * exp(-0.5 * dp * dp);
            const double P1 = wl[j] * fn[j] * pdf_m, P2 = wl[j] * gn[j] * cdf_m, P3 = -P1 * z;
            const double R1 = wl[j] * fd[j] * pdf_p, R2 = wl[j] * gd[j] * cdf_p;
            const double root = lx - lbu[j];
            const double ir = root > 0.0 ? 0.5 / root : 0.0;
            const double ddp0 = (dlb0 + ir * dh0[j] + dmu0 * s) * ivz[j] - dp * dvv0;
            const double ddp1 = (dlb1 + ir * dh1[j] + dmu1 * s) * ivz[j] - dp * dvv1;
            in0 += P1 * ddp0 + P2 * e0.dr + P3 * e0.dv;
            id0 += R1 * ddp0 + R2 * e0.dq;
            in1 += P1 * ddp1 + P2 * e1.dr + P3 * e1.dv;
            id1 += R1 * ddp1 + R2 * e1.dq;
          }
        }
        din_n[0][i - 1] = in0 * zt[i];
        did_n[0][i - 1] = id0 * zt[i];
        din_n[1][i - 1] = in1 * zt[i];
        did_n[1][i - 1] = id1 * zt[i];
      } else if (fp_a) {
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
    // With tangents: the boundary before the update, and N and D of each node.
    alignas(64) double lbt_old[kAloMaxNodes + 1], N_n[kAloMaxNodes + 1], D_n[kAloMaxNodes + 1];
    if (nd > 0) std::copy(log_bt, log_bt + n + 1, lbt_old);
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
      N_n[i] = N;
      D_n[i] = D;
      double lb_new = -(r - q) * tau + log(N / D);
      lb_new = lb_new < b.log_x ? lb_new : b.log_x;  // B <= X (also catches NaN)
      log_bt[i] = lb_new;
    }
    // Their tangents: d ln B_new = -(dr - dq) tau + dN/N - dD/D (d ln X where B_new = X).
    if (nd > 0) {
      alignas(64) double dp0s[kAloMaxNodes + 1], pp0s[kAloMaxNodes + 1], pm0s[kAloMaxNodes + 1];
#pragma omp simd
      for (int i = 1; i <= n; ++i) {
        const double st = zt[i], tau = st * st, vs = v * st;
        const double dp0 = (lbt_old[i] + (r - q + v2h) * tau) / vs, dm0 = dp0 - vs;
        dp0s[i] = dp0;
        pp0s[i] = kInvSqrt2Pi * exp(-0.5 * dp0 * dp0);
        pm0s[i] = kInvSqrt2Pi * exp(-0.5 * dm0 * dm0);
      }
      for (int d = 0; d < nd; ++d) {
        const AloDirection& e = tan->dir[d];
        const double dmu = e.dr - e.dq + v * e.dv, dv_v = e.dv * inv_v, dc = e.dr - e.dq;
        const double edv = e.dv, dlx = tan->log_x[d];
        double* dl = dlbt[d];
        const double* din = din_n[d];
        const double* did = did_n[d];
#pragma omp simd
        for (int i = 1; i <= n; ++i) {
          const double st = zt[i], tau = st * st, vs = v * st;
          const double dp0 = dp0s[i], dm0 = dp0 - vs, pdf_p0 = pp0s[i], pdf_m0 = pm0s[i];
          const double ddp0 = (dl[i] + dmu * tau) / vs - dp0 * dv_v;
          const double ddm0 = ddp0 - edv * st;
          double dN, dD;
          if (fp_a) {
            dN = -pdf_m0 * (dm0 * ddm0 + dv_v) / vs + din[i - 1];
            dD = -pdf_p0 * (dp0 * ddp0 + dv_v) / vs + pdf_p0 * ddp0 + did[i - 1];
          } else {
            dN = pdf_m0 * ddm0 + din[i - 1];
            dD = pdf_p0 * ddp0 + did[i - 1];
          }
          dl[i] = log_bt[i] < b.log_x ? -dc * tau + dN / N_n[i] - dD / D_n[i] : dlx;
        }
      }
    }
    for (int i = 0; i <= n; ++i) {
      const double lh = log_bt[i] - b.log_x;
      H[i] = lh * lh;
    }
    // Without tangents the iterations read the boundary through its coefficients (Clenshaw).
    if (nd == 0) coefficients(t, H, b.coef);
    tangent_nodes();
  }
  coefficients(t, H, b.coef);
}

}  // namespace

void alo_solve(const AloTables& t, double r, double q, double v, double T, AloBoundary& b,
               AloTangent* tan) {
  if (tan != nullptr && tan->dirs > 0) {
    alo_solve_impl<true>(t, r, q, v, T, b, tan);
  } else {
    alo_solve_impl<false>(t, r, q, v, T, b, nullptr);
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

AloPremium alo_unit_premium(const AloTables& t, const AloBoundary& b, const AloTangent& tan,
                            double x) noexcept {
  AloPremium out;
  const double r = b.r, q = b.q, v = b.v, T = b.T, sT = b.sqrtT;
  const double lx = std::log(x);
  if (lx <= b.log_b(sT)) {
    out.exercise = true;
    return out;
  }
  const int p = t.p;
  const double v2h = 0.5 * v * v, inv_v = 1.0 / v, inv_x = 1.0 / x;
  alignas(64) double lbu[kMaxQuad], dlbu[kAloMaxDirs][kMaxQuad];
  const double* fp = t.fp.data();
  const double* wp = t.wp.data();
  if (tan.dirs > 0) {
    const double* dH[kAloMaxDirs] = {tan.h[0], tan.h[1]};
    double* dl[kAloMaxDirs] = {dlbu[0], dlbu[1]};
    log_b_tangent_many(t.interp_p.data(), b.n, b.log_x, b.h, tan, dH, lbu, dl, p);
  } else {
    log_b_many(b, t.sp.data(), sT, lbu, p);
  }
  // The integrand r e^{-rs} Phi(-d-) - q x e^{-qs} Phi(-d+) (s = z^2 = T - u) as alo_unit_put
  // sums it, and its derivatives: d(d+-)/dx = a = 1 / (x v z), so
  //   d/dx   = -r e^{-rs} phi(d-) a - q e^{-qs} [Phi(-d+) - phi(d+) / (v z)],
  //   d2/dx2 = r e^{-rs} phi(d-) a (d- a + 1/x) - q e^{-qs} phi(d+) a (d+ / (v z) - 1);
  // along a direction (dv, dr, dq), with d(d+) = (-d ln B(u) + (dr - dq + v dv) s) / (v z)
  // - d+ dv / v and d(d-) = d(d+) - dv z:
  //   dr e^{-rs} (1 - rs) Phi(-d-) - r e^{-rs} phi(d-) d(d-)
  //   - x e^{-qs} [dq (1 - qs) Phi(-d+) - q phi(d+) d(d+)].
  alignas(64) double dps[kMaxQuad], ers[kMaxQuad], eqs[kMaxQuad], nms[kMaxQuad], nps[kMaxQuad],
      pms[kMaxQuad], pps[kMaxQuad];
  double prem = 0.0, d1 = 0.0, d2 = 0.0;
#pragma omp simd reduction(+ : prem, d1, d2)
  for (int j = 0; j < p; ++j) {
    const double z = sT * fp[j], s = z * z;
    const double dp = (lx - lbu[j] + (r - q + v2h) * s) / (v * z);
    const double dm = dp - v * z;
    const double er = exp(-r * s), eq = exp(-q * s);
    const double nm = 0.5 * erfc(dm * kInvSqrt2), np = 0.5 * erfc(dp * kInvSqrt2);
    const double pm = kInvSqrt2Pi * exp(-0.5 * dm * dm), pp = kInvSqrt2Pi * exp(-0.5 * dp * dp);
    const double ivz = inv_v / z, a = ivz * inv_x;
    const double w2z = wp[j] * 2.0 * z;
    prem += w2z * (r * er * nm - q * x * eq * np);
    d1 += w2z * (-r * er * pm * a - q * eq * (np - pp * ivz));
    d2 += w2z * (r * er * pm * a * (dm * a + inv_x) - q * eq * pp * a * (dp * ivz - 1.0));
    dps[j] = dp;
    ers[j] = er;
    eqs[j] = eq;
    nms[j] = nm;
    nps[j] = np;
    pms[j] = pm;
    pps[j] = pp;
  }
  for (int d = 0; d < tan.dirs; ++d) {
    const AloDirection& e = tan.dir[d];
    const double dmu = e.dr - e.dq + v * e.dv, dv_v = e.dv * inv_v;
    const double* dl = dlbu[d];
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < p; ++j) {
      const double z = sT * fp[j], s = z * z;
      const double ddp = (dmu * s - dl[j]) * (inv_v / z) - dps[j] * dv_v;
      const double ddm = ddp - e.dv * z;
      const double da = e.dr * ers[j] * (1.0 - r * s) * nms[j] - r * ers[j] * pms[j] * ddm;
      const double db = x * eqs[j] * (e.dq * (1.0 - q * s) * nps[j] - q * pps[j] * ddp);
      sum += wp[j] * 2.0 * z * (da - db);
    }
    out.dir[d] = sum * sT;
  }
  out.value = prem * sT;
  out.dx = d1 * sT;
  out.dxx = d2 * sT;
  out.euro = bsm_price(x, 1.0, T, r, q, v, -1.0);
  return out;
}

}  // namespace tradecore::pricing::detail
