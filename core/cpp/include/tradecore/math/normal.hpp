#pragma once
// Normal distribution functions with relative accuracy in the tails, usable from host and
// CUDA device code (the TC_HD functions are inline: this header is shared by core/cpp and
// core/cuda so both compute the same numbers).
#include <math.h>

#if defined(__CUDACC__)
#define TC_HD __host__ __device__
#else
#define TC_HD
#endif

namespace tradecore::math {

inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;    // 1/sqrt(2 pi)
inline constexpr double kSqrtPiOver2 = 1.2533141373155002512;    // sqrt(pi/2)
inline constexpr double kInvSqrtPi = 0.56418958354775628695;     // 1/sqrt(pi)
inline constexpr double kTwoOverSqrtPi = 1.1283791670955125739;  // 2/sqrt(pi)
// 1/sqrt(2) as an unevaluated sum hi + lo (double-double), so x/sqrt(2) carries no rounding.
inline constexpr double kInvSqrt2Hi = 0.7071067811865476;
inline constexpr double kInvSqrt2Lo = -4.8336466567264565e-17;

// exp(-x*x/2) with x*x split exactly (fma), so the result keeps full relative accuracy for
// large |x| (a plain exp(-0.5*x*x) loses x*x/2 ulps).
TC_HD inline double exp_half_square_neg(double x) {
  const double p = x * x;
  const double e = fma(x, x, -p);
  return exp(-0.5 * p) * (1.0 - 0.5 * e);
}

// Standard normal density.
TC_HD inline double norm_pdf(double x) { return kInvSqrt2Pi * exp_half_square_neg(x); }

// Standard normal CDF, relative accuracy of a few ulps down to the underflow threshold
// (x ~ -38): erfc(-x/sqrt 2)/2 with the rounding of the argument corrected to first order.
TC_HD inline double norm_cdf(double x) {
  const double a = -x * kInvSqrt2Hi;
  const double da = fma(-x, kInvSqrt2Hi, -a) - x * kInvSqrt2Lo;  // exact a = a + da
  return 0.5 * (erfc(a) - da * kTwoOverSqrtPi * exp(-a * a));    // erfc'(a) = -2/sqrt(pi) e^-a^2
}

// Scaled complementary error function exp(z*z) erfc(z) for z >= 0, without exp or erfc:
// (1 + 2z) erfcx(z) is a smooth function of y = (z - k)/(z + k) on [-1, 1) (k = 3.75, the
// variable of Shepherd & Laframboise, Math. Comp. 36 (1981)); a degree-22 polynomial in y
// (the Chebyshev interpolant computed with mpmath, in monomial form; even and odd halves in
// y^2 evaluated as two independent chains) gives it to < 3 ulps on [0, 1e8]. Beyond 1e8 the
// asymptotic 1/(z sqrt(pi)) is exact in double precision (the next term is 1/(2z^2) < 1e-16).
// Branch-free (a select at the end), so it vectorises inside `omp simd` loops.
TC_HD inline double erfcx_nonneg(double z) {
  constexpr double k = 3.75;
  const double zk = z + k, z2 = 1.0 + 2.0 * z;
  const double inv = 1.0 / (zk * z2);  // one division for y and for the 1/(1 + 2z)
  const double y = (z - k) * z2 * inv;
  const double y2 = y * y;
  double pe = -2.623107347133476e-09;
  pe = fma(pe, y2, 3.197926671666804e-08);
  pe = fma(pe, y2, -2.4857126248016745e-07);
  pe = fma(pe, y2, 1.7419821586224816e-06);
  pe = fma(pe, y2, -1.1438048033346894e-05);
  pe = fma(pe, y2, 5.164652974177416e-05);
  pe = fma(pe, y2, 0.000293714378044958);
  pe = fma(pe, y2, -0.009746579683265262);
  pe = fma(pe, y2, -0.05869339857664934);
  pe = fma(pe, y2, -0.10880393014244462);
  pe = fma(pe, y2, 0.0035854154854790257);
  pe = fma(pe, y2, 1.2375126308378275);
  double po = -1.9551358868985616e-09;
  po = fma(po, y2, 1.879082322370048e-08);
  po = fma(po, y2, -5.084465378687302e-08);
  po = fma(po, y2, -9.792625707303523e-07);
  po = fma(po, y2, 2.2387565714911816e-05);
  po = fma(po, y2, -0.00029015535246077655);
  po = fma(po, y2, 0.0017556261651970652);
  po = fma(po, y2, 0.02836227737211114);
  po = fma(po, y2, 0.09230432116428125);
  po = fma(po, y2, 0.08227673848999506);
  po = fma(po, y2, -0.14024059858554525);
  const double v = fma(po, y, pe) * zk * inv;  // NaN beyond ~1e154 (inv underflows): not taken
  return z > 1e8 ? kInvSqrtPi / z : v;
}

// Scaled complementary error function exp(z*z) erfc(z), accurate for every z (overflows to
// +inf below z ~ -26.6 where the value exceeds the double range).
TC_HD inline double erfcx(double z) {
  if (z >= 0.0) return erfcx_nonneg(z);
  // erfcx(z) = 2 e^{z^2} - erfcx(-z): no cancellation for z < 0 (2 e^{z^2} >= 2 > erfcx(-z)).
  const double p = z * z;
  const double e = fma(z, z, -p);
  return 2.0 * exp(p) * (1.0 + e) - erfcx_nonneg(-z);
}

// erfcx(z1) - erfcx(z2) for z1, z2 >= 0 without cancellation (the difference of two close
// values is what the normalised Black price is, deep out of the money or at small vol). With
// f(z) = P(y(z))/(1 + 2z) as in erfcx_nonneg: P(y1) - P(y2) = (y1 - y2) Q(y2), Q the quotient
// of P by (y - y1) (its coefficients are the partial Horner sums of P at y1, so P(y1) and
// Q(y2) come from one loop), y1 - y2 = 2k (z1 - z2)/((z1 + k)(z2 + k)), hence
//   f(z1) - f(z2) = (z1 - z2) [2k Q(y2) (1 + 2z2)/((z1 + k)(z2 + k)) - 2 P(y2)]
//                   / ((1 + 2z1)(1 + 2z2)),
// where the bracket (-slope * (1 + 2z1)(1 + 2z2)) cancels by at most ~1 bit: < 8 ulps for
// z1 >= 0.1, < 30 ulps near 0 (measured against mpmath). dz is z1 - z2 as the caller knows it
// exactly (z1 and z2 carry the rounding of their own computation, which is ~|z| ulps and would
// swamp a small difference; only the slope is taken at the rounded points). Also gives
// erfcx(z1) and erfcx(z2) (< 3 ulps). For z1, z2 <= 1e8.
TC_HD inline double erfcx_pair_nonneg(double z1, double z2, double dz, double* f1, double* f2) {
  constexpr double k = 3.75;
  constexpr double c[23] = {
      1.2375126308378275,      -0.14024059858554525,   0.0035854154854790257,
      0.08227673848999506,     -0.10880393014244462,   0.09230432116428125,
      -0.05869339857664934,    0.02836227737211114,    -0.009746579683265262,
      0.0017556261651970652,   0.000293714378044958,   -0.00029015535246077655,
      5.164652974177416e-05,   2.2387565714911816e-05, -1.1438048033346894e-05,
      -9.792625707303523e-07,  1.7419821586224816e-06, -5.084465378687302e-08,
      -2.4857126248016745e-07, 1.879082322370048e-08,  3.197926671666804e-08,
      -1.9551358868985616e-09, -2.623107347133476e-09,
  };
  const double a1 = z1 + k, a2 = z2 + k;
  const double y1 = (z1 - k) / a1, y2 = (z2 - k) / a2;
  double p = c[22], d = 0.0;
#if !defined(__CUDACC__)
#pragma GCC unroll 22
#endif
  for (int i = 21; i >= 0; --i) {
    d = fma(d, y2, p);
    p = fma(p, y1, c[i]);
  }
  const double dy = 2.0 * k * dz / (a1 * a2);
  const double p2 = p - dy * d;  // P(y2)
  const double c1 = 1.0 + 2.0 * z1, c2 = 1.0 + 2.0 * z2;
  const double inv = 1.0 / (c1 * c2);
  *f1 = p * c2 * inv;
  *f2 = p2 * c1 * inv;
  return dz * (2.0 * k * d * c2 / (a1 * a2) - 2.0 * p2) * inv;
}

// Rough inverse of the normal CDF for 0 < p < 1 (Abramowitz & Stegun 26.2.23, |error| < 4.5e-4
// in x): used only for initial guesses that an iteration refines.
TC_HD inline double norm_cdf_inverse_rough(double p) {
  const bool lower = p < 0.5;
  const double pp = lower ? p : 1.0 - p;
  const double t = sqrt(-2.0 * log(pp));
  const double x = t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                           (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
  return lower ? -x : x;
}

}  // namespace tradecore::math
