#pragma once
// Per-option Black-Scholes-Merton / Black-76 kernels shared by the CPU batches and the CUDA
// kernels (inline __host__ __device__ functions: one source for both paths).
//
// Normalised Black: with x = ln(F/K) and s = sigma sqrt(T), the undiscounted call price over
// sqrt(F K) is b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2). Out-of-the-money values
// (x <= 0) are computed without cancellation in three regions of h = x/s and t = s/2:
//   deep (h <= -max(4, 2t)): b = s e^{-h^2/2}/(sqrt(2 pi) h^2) int_0^inf e^{-y} g(y) dy, from
//     b = int_0^s db/ds' ds' (db/ds = e^{-(h^2+t^2)/2}/sqrt(2 pi) > 0) with the substitution
//     1/w^2 = 1 + 2y/h^2 (w = s'/s); 20-point Gauss-Laguerre on the smooth g.
//   small t (t < 1/8): the odd Taylor series in t of e^{ht} N(h+t) - e^{-ht} N(h-t), whose
//     coefficients obey f_{k+1} = h f_k + phi(h) m_k (m_k the derivatives of e^{-t^2/2} at 0).
//   otherwise: the scaled form b = E/2 [erfcx(-(h+t)/sqrt 2) - erfcx((t-h)/sqrt 2)],
//     E = e^{-(h^2+t^2)/2}, whose cancellation is bounded (< 5 bits) in this region.
// In-the-money values add the intrinsic 2 sinh(x/2) (b(x) = 2 sinh(x/2) + b(-x)).
#include <stdint.h>

#include "tradecore/math/normal.hpp"

namespace tradecore::pricing {

// Output columns of the European kernels, in the order of the Python EUROPEAN_OUTPUTS.
enum EuropeanColumn : int {
  kPrice = 0,
  kDelta,
  kGamma,
  kVega,
  kTheta,
  kRho,
  kPhi,
  kVanna,
  kCharm,
  kVomma,
  kSpeed,
  kColor,
  kZomma,
  kUltima,
  kVeta,
  kDualDelta,
  kDualGamma,
  kElasticity,
  kNumEuropeanColumns
};

// Implied-volatility row status codes.
enum ImpliedVolStatus : int8_t {
  kIvOk = 0,
  kIvBelowIntrinsic = 1,  // price <= intrinsic value (on or below the lower bound)
  kIvAboveUpper = 2,      // price >= S e^{-qT} (call) or K e^{-rT} (put)
  kIvNonPositive = 3,     // price <= 0
  kIvInvalidInput = 4,    // a non-finite or out-of-domain input (S, K <= 0, T <= 0, NaN, type)
};

namespace detail {

inline constexpr double kDeepH = 4.0;
inline constexpr double kSmallT = 0.125;

// exp(-(a^2 + b^2)/2) keeping the rounding of the squares and of their sum.
TC_HD inline double exp_half_sum_squares_neg(double a, double b) {
  const double pa = a * a, ea = fma(a, a, -pa);
  const double pb = b * b, eb = fma(b, b, -pb);
  const double s = pa + pb;
  const double bb = s - pa;
  const double es = (pa - (s - bb)) + (pb - bb);  // TwoSum error
  return exp(-0.5 * s) * (1.0 - 0.5 * (ea + eb + es));
}

TC_HD inline double black_deep_otm(double h, double t, double s) {
  // 20-point Gauss-Laguerre rule (local constants: usable in device code too), padded to 24
  // with zero weights so that the host loop vectorises in whole AVX-512 registers.
  constexpr int kNodes = 24;
  alignas(64) constexpr double kLaguerreNodes[kNodes] = {0.07053988969198875,
                                                         0.37212681800161146,
                                                         0.9165821024832735,
                                                         1.707306531028344,
                                                         2.749199255309432,
                                                         4.048925313850887,
                                                         5.6151749708616165,
                                                         7.459017453671064,
                                                         9.594392869581096,
                                                         12.038802546964316,
                                                         14.81429344263074,
                                                         17.948895520519375,
                                                         21.47878824028501,
                                                         25.451702793186904,
                                                         29.93255463170061,
                                                         35.013434240479,
                                                         40.83305705672857,
                                                         47.6199940473465,
                                                         55.810795750063896,
                                                         66.52441652561575,
                                                         1.0,
                                                         1.0,
                                                         1.0,
                                                         1.0};
  alignas(64) constexpr double kLaguerreWeights[kNodes] = {0.16874680185111388,
                                                           0.2912543620060683,
                                                           0.2666861028670013,
                                                           0.16600245326950683,
                                                           0.07482606466879237,
                                                           0.02496441730928322,
                                                           0.006202550844572237,
                                                           0.0011449623864769082,
                                                           0.00015574177302781197,
                                                           1.5401440865224915e-05,
                                                           1.0864863665179824e-06,
                                                           5.3301209095567146e-08,
                                                           1.757981179050582e-09,
                                                           3.7255024025123206e-11,
                                                           4.767529251578191e-13,
                                                           3.3728442433624386e-15,
                                                           1.1550143395003989e-17,
                                                           1.5395221405823435e-20,
                                                           5.286442725569158e-24,
                                                           1.6564566124990233e-28,
                                                           0.0,
                                                           0.0,
                                                           0.0,
                                                           0.0};
  const double eps = 2.0 / (h * h);
  const double tt = 0.5 * t * t;
  double sum = 0.0;
#if !defined(__CUDACC__)
#pragma omp simd reduction(+ : sum)
#endif
  for (int i = 0; i < kNodes; ++i) {
    const double u = 1.0 / (1.0 + eps * kLaguerreNodes[i]);
    sum += kLaguerreWeights[i] * u * sqrt(u) * exp(-tt * u);
  }
  return s * math::kInvSqrt2Pi / (h * h) * math::exp_half_square_neg(h) * sum;
}

TC_HD inline double black_small_t(double h, double t) {
  // b = 2 phi(h) sum_{k odd} t^k/k! F_k, F_0 = N(h)/phi(h), F_{k+1} = h F_k + m_k.
  double F = math::kSqrtPiOver2 * math::erfcx(-h * math::kInvSqrt2Hi);
  // Two steps of the recurrence per odd term: F_{k+1} = h F_k + m_k (k even), F_{k+2} = h F_{k+1}.
  double m = 1.0;  // m_k for even k: (-1)^{k/2} (k-1)!!
  double term = t, sum = 0.0;
  const double tt = t * t;
  for (int k = 0; k < 40; k += 2) {
    F = h * F + m;  // F_{k+1}
    const double add = term * F;
    sum += add;
    if (k >= 2 && fabs(add) <= 1e-17 * fabs(sum)) break;
    m *= -(k + 1.0);
    F = h * F;                             // F_{k+2}
    term *= tt / ((k + 2.0) * (k + 3.0));  // t^{k+3}/(k+3)!
  }
  return 2.0 * math::norm_pdf(h) * sum;
}

TC_HD inline double black_scaled(double x, double h, double t) {
  const double E = exp_half_sum_squares_neg(h, t);
  const double a = h + t;
  const double first =
      a >= 0.0 ? exp(0.5 * x) * math::norm_cdf(a) : 0.5 * E * math::erfcx(-a * math::kInvSqrt2Hi);
  return first - 0.5 * E * math::erfcx((t - h) * math::kInvSqrt2Hi);
}

// ln(S/K) with full relative accuracy near the money: S - K is exact there (Sterbenz), so
// log1p((S-K)/K) carries one rounding instead of the absolute ulp of log(S/K).
TC_HD inline double log_moneyness(double S, double K) {
  return (S >= 0.5 * K && S <= 2.0 * K) ? log1p((S - K) / K) : log(S / K);
}

}  // namespace detail

// b(x, s) for x <= 0 (out of the money), s > 0.
TC_HD inline double normalised_black_otm(double x, double s) {
  const double h = x / s, t = 0.5 * s;
  if (-h >= detail::kDeepH && -h >= 2.0 * t) return detail::black_deep_otm(h, t, s);
  if (t < detail::kSmallT) return detail::black_small_t(h, t);
  return detail::black_scaled(x, h, t);
}

// Normalised call price b(x, s) for any x (a put is b(-x, s)).
TC_HD inline double normalised_black(double x, double s) {
  if (x > 0.0) return 2.0 * sinh(0.5 * x) + normalised_black_otm(-x, s);
  return normalised_black_otm(x, s);
}

// e^{x/2} - b(x, s) for x <= 0: the distance to the upper bound, as a sum of positive terms.
TC_HD inline double normalised_black_complement(double x, double s) {
  const double h = x / s, t = 0.5 * s;
  const double E = detail::exp_half_sum_squares_neg(h, t);
  const double a = h + t;
  const double first =
      a <= 0.0 ? exp(0.5 * x) * math::norm_cdf(-a) : 0.5 * E * math::erfcx(a * math::kInvSqrt2Hi);
  return first + 0.5 * E * math::erfcx((t - h) * math::kInvSqrt2Hi);
}

// Price and every Greek of one European option into g[kNumEuropeanColumns].
// BSM: S spot, q dividend yield. Black-76 (black76 = true): S is the forward, q is ignored,
// rho = dV/dr at a fixed forward and phi is NaN. w = +1 call, -1 put. Inputs must be valid
// (S, K, sigma > 0, T >= 0, all finite); T == 0 gives intrinsic values (see european.hpp).
TC_HD inline void european_greeks(double S, double K, double T, double r, double q, double v,
                                  double w, bool black76, double* g) {
  const double qq = black76 ? r : q;  // yield of the underlying
  const double carry = r - qq;
  if (!(T > 0.0)) {
    const double diff = w * (S - K);
    const double delta = S == K ? 0.5 * w : (diff > 0.0 ? w : 0.0);
    for (int k = 0; k < kNumEuropeanColumns; ++k) g[k] = 0.0;
    g[kPrice] = diff > 0.0 ? diff : 0.0;
    g[kDelta] = delta;
    g[kDualDelta] = -delta;
    g[kElasticity] = g[kPrice] > 0.0 ? delta * S / g[kPrice] : 0.0;
    if (black76) g[kPhi] = NAN;
    return;
  }
  const double sT = sqrt(T);
  const double s = v * sT;
  const double x = detail::log_moneyness(S, K) + carry * T;
  const double d1 = x / s + 0.5 * s;
  const double d2 = d1 - s;
  const double dfq = exp(-qq * T), dfr = exp(-r * T);
  const double Sq = S * dfq, Kr = K * dfr;
  const double Nd1 = math::norm_cdf(w * d1), Nd2 = math::norm_cdf(w * d2);
  const double nd1 = math::norm_pdf(d1), nd2 = math::norm_pdf(d2);
  const double price = sqrt(S * K) * exp(-0.5 * (qq + r) * T) * normalised_black(w * x, s);
  const double delta = w * dfq * Nd1;
  const double gamma = dfq * nd1 / (S * s);
  const double vega = Sq * nd1 * sT;
  const double dd1dT = carry / s - d2 / (2.0 * T);  // d(d1)/dT
  g[kPrice] = price;
  g[kDelta] = delta;
  g[kGamma] = gamma;
  g[kVega] = vega;
  g[kTheta] = -Sq * nd1 * v / (2.0 * sT) - w * r * Kr * Nd2 + w * qq * Sq * Nd1;
  g[kRho] = black76 ? -T * price : w * Kr * T * Nd2;
  g[kPhi] = black76 ? NAN : -w * Sq * T * Nd1;
  g[kVanna] = -dfq * nd1 * d2 / v;
  g[kCharm] = w * qq * dfq * Nd1 - dfq * nd1 * dd1dT;
  g[kVomma] = vega * d1 * d2 / v;
  g[kSpeed] = -gamma / S * (d1 / s + 1.0);
  g[kColor] = gamma * (qq + 0.5 / T + d1 * dd1dT);
  g[kZomma] = gamma * (d1 * d2 - 1.0) / v;
  g[kUltima] = -vega / (v * v) * (d1 * d2 * (1.0 - d1 * d2) + d1 * d1 + d2 * d2);
  g[kVeta] = vega * (qq + d1 * dd1dT - 0.5 / T);
  g[kDualDelta] = -w * dfr * Nd2;
  g[kDualGamma] = dfr * nd2 / (K * s);
  g[kElasticity] = price > 0.0 ? delta * S / price : 0.0;
}

// Normalised implied volatility: the s > 0 with normalised_black_otm(x, s) == beta, for x <= 0
// and 0 < beta < e^{x/2} (the caller checks the bounds). Householder steps of third order on
// an objective chosen by side of the inflection point s_c = sqrt(2|x|): 1/ln b below it (b is
// ~exp(-x^2/2s^2) there) and -ln(e^{x/2} - b) above it, from closed-form initial guesses.
// Returns the number of iterations used through *iterations when non-null.
TC_HD inline double normalised_implied_vol(double beta, double x, int* iterations = nullptr) {
  const double bmax = exp(0.5 * x);
  const double sc = sqrt(-2.0 * x);
  // At s_c, h = -t: b_c = e^{x/2}/2 - e^{-x/2} N(-sqrt(2|x|)) (only steers the start, so the
  // cancellation of this form for tiny |x| does not matter).
  const double bc = sc > 0.0 ? 0.5 * bmax - math::norm_cdf(-sc) / bmax : 0.0;
  const bool lower = beta < bc;
  double s;
  const double ln_beta = log(beta);
  const double cbeta = bmax - beta;
  if (lower) {
    // b is convex below s_c: the tangent at s_c meets beta to the right of the root.
    const double bpc = math::kInvSqrt2Pi * detail::exp_half_sum_squares_neg(x / sc, 0.5 * sc);
    const double tangent = sc - (bc - beta) / bpc;
    // ln b ~ ln s - (h^2 + t^2)/2 - ln(sqrt(2 pi)(h^2 + 3 - t^2)): a few fixed-point passes.
    s = fabs(x) / sqrt(-2.0 * ln_beta);
    for (int k = 0; k < 2; ++k) {
      const double h2 = x * x / (s * s), t2 = 0.25 * s * s;
      const double rhs =
          2.0 * (log(s) - 0.5 * t2 - log(2.5066282746310002 * (h2 + 3.0 - t2)) - ln_beta);
      s = rhs > 0.0 ? fabs(x) / sqrt(rhs) : sc;
      if (s > sc) s = sc;
    }
    if (tangent > 0.0 && tangent < s) s = tangent;
  } else {
    // Far above s_c, e^{x/2} - b ~ 2 cosh(x/2) N(-s/2); near the money at small s,
    // b ~ s/sqrt(2 pi).
    const double p = cbeta / (2.0 * cosh(0.5 * x));
    s = p < 0.45 ? -2.0 * math::norm_cdf_inverse_rough(p) : 2.5066282746310002 * beta;
    if (s < sc) s = sc;
    if (!(s > 0.0)) s = 1e-3;
  }
  // Above s_c: the log-distance to the bound where the price is near it, else b itself.
  const bool near_upper = !lower && cbeta < 0.5 * bmax;
  double lo = lower ? 0.0 : sc, hi = lower ? sc : INFINITY;
  int it = 0;
  for (; it < 16; ++it) {
    const double h = x / s, t = 0.5 * s;
    const double bp = math::kInvSqrt2Pi * detail::exp_half_sum_squares_neg(h, t);  // db/ds
    const double A = h * h / s - 0.25 * s;                                         // b''/b'
    const double B = A * A - 3.0 * h * h / (s * s) - 0.25;                         // b'''/b'
    double nu, h2, h3;
    bool too_low;
    if (lower) {
      const double b = normalised_black_otm(x, s);
      if (!(b > 0.0) || !(bp > 0.0)) {  // underflow: far too small a vol
        lo = s;
        s = hi > 0.0 ? 0.5 * (s + hi) : 2.0 * s;
        continue;
      }
      const double L = log(b);
      too_low = L < ln_beta;
      nu = b * L * (ln_beta - L) / (ln_beta * bp);
      const double r1 = bp / (b * L);
      h2 = -(L + 2.0) * r1 + A;
      h3 = 2.0 * (L * L + 3.0 * L + 3.0) * r1 * r1 - 3.0 * (L + 2.0) * r1 * A + B;
    } else if (!near_upper) {
      const double b = normalised_black_otm(x, s);
      too_low = b < beta;
      nu = (beta - b) / bp;
      h2 = A;
      h3 = B;
    } else {
      const double c = normalised_black_complement(x, s);
      if (!(c > 0.0)) {  // no distance left to the bound: far too large a vol
        hi = s;
        s = 0.5 * (lo + s);
        continue;
      }
      too_low = c > cbeta;
      nu = c * log(c / cbeta) / bp;
      const double r1 = bp / c;
      h2 = r1 + A;
      h3 = 2.0 * r1 * r1 + 3.0 * r1 * A + B;
    }
    if (too_low) {
      lo = s > lo ? s : lo;
    } else {
      hi = s < hi ? s : hi;
    }
    const double ds = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0));
#ifdef TRACE
    printf("it %d s %.17g ds %.3g nu %.3g lo %.17g hi %.17g\n", it, s, ds, nu, lo, hi);
#endif
    // Householder(3) converges at fourth order: after a step of 1e-5 s the error is ~1e-20 s.
    if (fabs(ds) <= 1e-5 * s) {
      s += ds;
      ++it;
      break;
    }
    double next = s + ds;
    if (!(next > lo && next < hi)) next = hi < INFINITY ? 0.5 * (lo + hi) : 2.0 * s;
    s = next;
  }
  if (iterations) *iterations = it;
  return s;
}

// The normalisation of implied_vol_one: x <= 0 and the out-of-the-money normalised price
// beta (0 < beta < e^{x/2} when the status is kIvOk) of one option; returns the status.
TC_HD inline int8_t implied_vol_normalise(double price, double S, double K, double T, double r,
                                          double q, int type, bool black76, double* x_out,
                                          double* beta_out) {
  const bool ok = S > 0.0 && S < INFINITY && K > 0.0 && K < INFINITY && T > 0.0 && T < INFINITY &&
                  fabs(r) < INFINITY && (black76 || fabs(q) < INFINITY) &&
                  (type == 1 || type == -1) && price == price && price < INFINITY;
  if (!ok) return kIvInvalidInput;
  if (!(price > 0.0)) return kIvNonPositive;
  const double qq = black76 ? r : q;
  double x = detail::log_moneyness(S, K) + (r - qq) * T;
  const double beta0 = price / (sqrt(S * K) * exp(-0.5 * (qq + r) * T));
  double beta = beta0;
  if (type < 0) x = -x;  // a put at x is a call at -x
  if (x > 0.0) {
    beta -= 2.0 * sinh(0.5 * x);  // in-the-money: strip the intrinsic value
    x = -x;
  }
  if (!(beta > 0.0)) return kIvBelowIntrinsic;
  if (!(beta < exp(0.5 * x))) return kIvAboveUpper;
  *x_out = x;
  *beta_out = beta;
  return kIvOk;
}

// Implied volatility of one European option. BSM: S spot, q dividend yield; Black-76: S is the
// forward and q is ignored. Writes the vol (NaN unless the status is kIvOk) and returns the
// status.
TC_HD inline int8_t implied_vol_one(double price, double S, double K, double T, double r, double q,
                                    int type, bool black76, double* vol) {
  *vol = NAN;
  double x = 0.0, beta = 0.0;
  const int8_t status = implied_vol_normalise(price, S, K, T, r, q, type, black76, &x, &beta);
  if (status != kIvOk) return status;
  *vol = normalised_implied_vol(beta, x) / sqrt(T);
  return kIvOk;
}

}  // namespace tradecore::pricing
