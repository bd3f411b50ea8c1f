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

inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi)
inline constexpr double kSqrtPiOver2 = 1.2533141373155002512;   // sqrt(pi/2)
inline constexpr double kInvSqrtPi = 0.56418958354775628695;    // 1/sqrt(pi)
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
  return 0.5 * (erfc(a) - da * kTwoOverSqrtPi * exp(-a * a));  // erfc'(a) = -2/sqrt(pi) e^-a^2
}

// Scaled complementary error function exp(z*z) erfc(z), accurate for every z (overflows to
// +inf below z ~ -26.6 where the value exceeds the double range).
TC_HD inline double erfcx(double z) {
  if (z > 26.0) {
    // Asymptotic series 1/(z sqrt(pi)) sum (-1)^k (2k-1)!!/(2 z^2)^k: 9 terms reach 1e-17 here.
    const double u = 0.5 / (z * z);
    double term = 1.0, sum = 1.0;
    for (int k = 1; k <= 8; ++k) {
      term *= -(2.0 * k - 1.0) * u;
      sum += term;
    }
    return kInvSqrtPi / z * sum;
  }
  const double p = z * z;
  const double e = fma(z, z, -p);
  return exp(p) * (1.0 + e) * erfc(z);
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
