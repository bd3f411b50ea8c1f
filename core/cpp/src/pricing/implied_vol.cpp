// Include math.h first with the SIMD declarations of glibc's libmvec exposed, so that the
// block solver's loops below vectorise exp/log/log1p/sinh/cosh (vector variants) without
// -ffast-math.
#if defined(TC_HAVE_LIBMVEC)
#define __FAST_MATH__ 1
#include <math.h>
#undef __FAST_MATH__
#else
#include <math.h>
#endif

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "../threads.hpp"
#include "tradecore/pricing/implied_vol.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {
namespace {

constexpr std::size_t kParallelMin = 4096;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The block solver: rows are solved kBlock at a time, every step a branch-free loop over the
// rows still iterating (vectorised across rows, 8 per AVX-512 register), with the method of the
// scalar normalised_implied_vol (same normalisation, objectives, initial guesses, Householder
// steps and stop rule); only b is evaluated differently: one cancellation-free form from an
// erfcx pair below s_c (where the scalar kernel switches between Gauss-Laguerre, the small-t
// series and the scaled form), the scaled form or the small-t series above it. Rows it does not
// finish (an objective that underflows, more than kMaxVecIter steps) are solved again by the
// scalar solver. The two agree to ~1e-14 relative (docs/benchmarks_greeks.md).
constexpr std::size_t kBlock = 256;
// Vector loops run over whole vectors: trip counts are padded to a multiple of kLanes with
// copies of a real row, so no row is ever computed by a scalar remainder loop (whose scalar
// libm would give a row different last bits depending on where it falls in a batch).
constexpr std::size_t kLanes = 8;
constexpr std::size_t padded(std::size_t n) { return (n + kLanes - 1) / kLanes * kLanes; }
constexpr int kMaxVecIter = 6;
constexpr double kStepTol = 1e-5;  // see normalised_implied_vol

// Per-row codes are doubles in the vector loops (GCC 12 does not vectorise these loops when
// integer codes select between doubles).
using Code = double;
constexpr Code kGoOn = 0, kDone = 1, kScalar = 2;
constexpr Code kObjLower = 0, kObjUpper = 1, kObjNearUpper = 2;

struct BlockState {
  // Per active row (compacted after every step).
  alignas(64) double x[kBlock];     // ln(F/K) reduced to x <= 0
  alignas(64) double beta[kBlock];  // normalised out-of-the-money price
  alignas(64) double bmax[kBlock];  // e^{x/2}
  alignas(64) double lnb[kBlock];   // ln beta
  alignas(64) double cb[kBlock];    // e^{x/2} - beta
  alignas(64) double s[kBlock];     // the iterate sigma sqrt(T)
  alignas(64) double lo[kBlock];
  alignas(64) double hi[kBlock];
  alignas(64) double sqrtT[kBlock];
  alignas(64) std::int64_t row[kBlock];  // index in the block
  alignas(64) Code obj[kBlock];
  // Per step.
  alignas(64) double h[kBlock];
  alignas(64) double E[kBlock];
  alignas(64) double b[kBlock];
  alignas(64) double c[kBlock];
  alignas(64) Code flag[kBlock];
  alignas(64) std::int64_t series[kBlock];  // rows whose b comes from the small-t series
  alignas(64) double bs[kBlock];            // their b, by position in `series`
};

// b for small t above s_c (t < kSmallT, -t < h <= 0): black_small_t with the term count fixed
// (at most 8 odd terms are needed for any h > -4; 10 are summed) so that it vectorises.
inline double black_small_t_fixed(double h, double t) {
  double F = math::kSqrtPiOver2 * math::erfcx_nonneg(-h * math::kInvSqrt2Hi);
  double m = 1.0, term = t, sum = 0.0;
  const double tt = t * t;
  for (int k = 0; k < 20; k += 2) {
    F = h * F + m;
    sum += term * F;
    m *= -(k + 1.0);
    F = h * F;
    term *= tt * (1.0 / ((k + 2.0) * (k + 3.0)));
  }
  return 2.0 * math::norm_pdf(h) * sum;
}

// Solves rows [lo, lo + n) of the batch (n <= kBlock): vol[lo + j] and st[j].
void solve_block(const ImpliedVolBatch& in, double* vol, std::int8_t* st, std::size_t lo,
                 std::size_t n) {
  const bool b76 = in.model == Model::Black76;
  // Normalisation (implied_vol_normalise) of every row at once with the vector libm (a few
  // ulps). Rows where those ulps could matter - an invalid input or a price on or near a bound,
  // an in-the-money price that is mostly intrinsic value (beta < beta0/16: the vector sinh's
  // ulps of the intrinsic value stay below ~4 ulps of the price), a price within a
  // quarter of the upper bound (the near-bound objective takes e^{x/2} - beta) - are
  // normalised again with the scalar libm, so their status and digits are the scalar solver's.
  alignas(64) double buf[6][kBlock];
  alignas(64) double W[kBlock], X[kBlock], B[kBlock], G[kBlock], RT[kBlock];
  // Contiguous columns are read in place; strided (broadcast) ones are gathered.
  const In<double>* cols[6] = {&in.price,  &in.spot, &in.strike,
                               &in.expiry, &in.rate, b76 ? &in.rate : &in.dividend};
  const double* src[6];
  const std::size_t np = padded(n);
  for (int c = 0; c < 6; ++c) {
    const In<double>& col = *cols[c];
    if (col.stride == 1 && np == n) {
      src[c] = col.data + lo;
    } else {
      for (std::size_t j = 0; j < n; ++j) buf[c][j] = col[lo + j];
      for (std::size_t j = n; j < np; ++j) buf[c][j] = buf[c][0];
      src[c] = buf[c];
    }
  }
  for (std::size_t j = 0; j < n; ++j) W[j] = in.type[lo + j];
  for (std::size_t j = n; j < np; ++j) W[j] = W[0];
  const double* __restrict__ P = src[0];
  const double* __restrict__ S = src[1];
  const double* __restrict__ K = src[2];
  const double* __restrict__ T = src[3];
  const double* __restrict__ R = src[4];
  const double* __restrict__ Q = src[5];
#pragma omp simd
  for (std::size_t j = 0; j < np; ++j) {
    const double price = P[j], s_ = S[j], k_ = K[j], t_ = T[j], r = R[j], qq = Q[j];
    const double type = W[j];
    const bool ok = (s_ > 0.0) & (s_ < kInf) & (k_ > 0.0) & (k_ < kInf) & (t_ > 0.0) & (t_ < kInf) &
                    (fabs(r) < kInf) & (fabs(qq) < kInf) & ((type == 1.0) | (type == -1.0)) &
                    (price > 0.0) & (price < kInf);
    const double x0 = detail::log_moneyness(s_, k_) + (r - qq) * t_;
    const double beta0 = price / (sqrt(s_ * k_) * exp(-0.5 * (qq + r) * t_));
    const double xw = type < 0.0 ? -x0 : x0;
    const double intrinsic = xw > 0.0 ? 2.0 * sinh(0.5 * xw) : 0.0;
    const double beta = beta0 - intrinsic;
    const double x = xw > 0.0 ? -xw : xw;
    X[j] = x;
    B[j] = beta;
    G[j] = (ok & (beta > 0.0625 * beta0) & (beta < 0.75 * exp(0.5 * x))) ? 1.0 : 0.0;
    RT[j] = sqrt(t_);
  }
  BlockState A;
  std::size_t m = 0;
  for (std::size_t j = 0; j < n; ++j) {
    double x = X[j], beta = B[j];
    if (G[j] != 0.0) {
      st[j] = kIvOk;
    } else {
      const std::size_t i = lo + j;
      st[j] = implied_vol_normalise(in.price[i], in.spot[i], in.strike[i], in.expiry[i], in.rate[i],
                                    b76 ? 0.0 : in.dividend[i], in.type[i], b76, &x, &beta);
      if (st[j] != kIvOk) {
        vol[i] = kNaN;
        continue;
      }
    }
    A.x[m] = x;
    A.beta[m] = beta;
    A.sqrtT[m] = RT[j];
    A.row[m] = static_cast<std::int64_t>(j);
    ++m;
  }
  for (std::size_t j = m; j < padded(m); ++j) {  // padding: copies of row 0
    A.x[j] = A.x[0];
    A.beta[j] = A.beta[0];
  }

  // Initial guesses and objectives (normalised_implied_vol's, both branches computed).
#pragma omp simd
  for (std::size_t j = 0; j < padded(m); ++j) {
    const double x = A.x[j], beta = A.beta[j];
    const double bmax = exp(0.5 * x);
    const double sc = sqrt(-2.0 * x);
    // N(-sc) = e^{x} erfcx(sc/sqrt 2)/2, so N(-sc)/bmax = bmax erfcx(sc/sqrt 2)/2.
    const double bc =
        sc > 0.0 ? 0.5 * bmax * (1.0 - math::erfcx_nonneg(sc * math::kInvSqrt2Hi)) : 0.0;
    const bool lower = beta < bc;
    const double ln_beta = log(beta);
    const double cbeta = bmax - beta;
    const double ax = fabs(x);
    // Below s_c.
    const double bpc = math::kInvSqrt2Pi * detail::exp_half_sum_squares_neg(x / sc, 0.5 * sc);
    const double tangent = sc - (bc - beta) / bpc;
    double sl = ax / sqrt(-2.0 * ln_beta);
    for (int k = 0; k < 2; ++k) {
      const double h2 = x * x / (sl * sl), t2 = 0.25 * sl * sl;
      const double rhs =
          2.0 * (log(sl) - 0.5 * t2 - log(2.5066282746310002 * (h2 + 3.0 - t2)) - ln_beta);
      sl = rhs > 0.0 ? ax / sqrt(rhs) : sc;
      sl = sl > sc ? sc : sl;
    }
    sl = (tangent > 0.0 && tangent < sl) ? tangent : sl;
    // Above s_c.
    const double p = cbeta / (2.0 * cosh(0.5 * x));
    const double pp = p < 0.5 ? p : 1.0 - p;
    const double tq = sqrt(-2.0 * log(pp));
    const double zq = tq - (2.515517 + tq * (0.802853 + tq * 0.010328)) /
                               (1.0 + tq * (1.432788 + tq * (0.189269 + tq * 0.001308)));
    const double inv = p < 0.5 ? -zq : zq;  // norm_cdf_inverse_rough(p)
    double su = p < 0.45 ? -2.0 * inv : 2.5066282746310002 * beta;
    su = su < sc ? sc : su;
    su = su > 0.0 ? su : 1e-3;
    const bool near_upper = !lower && cbeta < 0.5 * bmax;
    A.s[j] = lower ? sl : su;
    A.obj[j] = lower ? kObjLower : (near_upper ? kObjNearUpper : kObjUpper);
    A.lo[j] = lower ? 0.0 : sc;
    A.hi[j] = lower ? sc : kInf;
    A.bmax[j] = bmax;
    A.lnb[j] = ln_beta;
    A.cb[j] = cbeta;
  }

  for (int it = 0; it < kMaxVecIter && m > 0; ++it) {
    // b and the distance to the bound c from one exp and one erfcx pair: below s_c (a <= 0)
    // b = E/2 [erfcx(-a/sqrt 2) - erfcx((t - h)/sqrt 2)] with the difference taken without
    // cancellation (erfcx_pair_nonneg: deep out of the money and small t included); above
    // it b = e^{x/2} - E/2 [erfcx(a/sqrt 2) + erfcx((t - h)/sqrt 2)] (cancelling by < 5 bits
    // for t >= 1/8; smaller t takes the series, as in normalised_black_otm).
    // (Rows [m, padded(m)) hold earlier rows' states: computed, never written out.)
    std::size_t ns = 0;
#pragma omp simd
    for (std::size_t j = 0; j < padded(m); ++j) {
      const double s = A.s[j], x = A.x[j], bmax = A.bmax[j];
      const double h = x / s, t = 0.5 * s;
      const double E = detail::exp_half_sum_squares_neg(h, t);
      const double a = h + t;
      double f1, f2;
      // z1 - z2 = -2t/sqrt 2 below s_c (a <= 0), 2h/sqrt 2 above it.
      const double dz = (a <= 0.0 ? -s : 2.0 * h) * math::kInvSqrt2Hi;
      const double diff = math::erfcx_pair_nonneg(fabs(a) * math::kInvSqrt2Hi,
                                                  (t - h) * math::kInvSqrt2Hi, dz, &f1, &f2);
      const double g1 = 0.5 * E * f1, g2 = 0.5 * E * f2;
      A.h[j] = h;
      A.E[j] = E;
      A.b[j] = a <= 0.0 ? 0.5 * E * diff : (bmax - g1) - g2;
      A.c[j] = a > 0.0 ? g1 + g2 : (bmax - g1) + g2;
      // (One expression: GCC 12 does not vectorise the loop with these conditions held in
      // boolean variables.)
      A.flag[j] = (a > 0.0 && t < detail::kSmallT && A.obj[j] != kObjNearUpper) ? kDone : kGoOn;
    }
    for (std::size_t j = 0; j < m; ++j) {  // (kDone marks "needs the series" here)
      if (A.flag[j] == kDone) A.series[ns++] = static_cast<std::int64_t>(j);
    }
    if (ns > 0) {
      for (std::size_t i = ns; i < padded(ns); ++i) A.series[i] = A.series[0];
#pragma omp simd
      for (std::size_t i = 0; i < padded(ns); ++i) {
        const std::int64_t j = A.series[i];
        A.bs[i] = black_small_t_fixed(A.h[j], 0.5 * A.s[j]);
      }
      for (std::size_t i = 0; i < ns; ++i) A.b[A.series[i]] = A.bs[i];
    }
    // Third-order Householder step on the row's objective (as normalised_implied_vol).
#pragma omp simd
    for (std::size_t j = 0; j < padded(m); ++j) {
      const double s = A.s[j], h = A.h[j], b = A.b[j], c = A.c[j];
      const double lnb = A.lnb[j], cb = A.cb[j], beta = A.beta[j];
      const Code obj = A.obj[j];
      const double bp = math::kInvSqrt2Pi * A.E[j];
      const double Ah = h * h / s - 0.25 * s;
      const double Bh = Ah * Ah - 3.0 * h * h / (s * s) - 0.25;
      const bool lower = obj == kObjLower, near = obj == kObjNearUpper;
      const double la = log(lower ? b : c / cb);  // ln b, or ln(c / cbeta)
      const double num = lower ? b * la * (lnb - la) : (near ? c * la : beta - b);
      const double den = lower ? lnb * bp : bp;
      const double nu = num / den;
      const double r1 = lower ? bp / (b * la) : (near ? bp / c : 0.0);
      const double P1 = lower ? -(la + 2.0) : 1.0;
      const double P2 = lower ? 2.0 * (la * la + 3.0 * la + 3.0) : 2.0;
      const double h2 = P1 * r1 + Ah;
      const double h3 = P2 * r1 * r1 + 3.0 * P1 * r1 * Ah + Bh;
      // (Bitwise & and | on the conditions: GCC 12 vectorises no select between booleans.)
      const bool too_low = (lower & (la < lnb)) | (near & (c > cb)) | (!lower & !near & (b < beta));
      const double lo = too_low && s > A.lo[j] ? s : A.lo[j];
      const double hi = !too_low && s < A.hi[j] ? s : A.hi[j];
      const double ds = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0));
      const bool conv = fabs(ds) <= kStepTol * s;
      double next = s + ds;
      next = (conv | ((next > lo) & (next < hi))) ? next : (hi < kInf ? 0.5 * (lo + hi) : 2.0 * s);
      // The scalar solver bisects where the objective underflows: leave those rows to it.
      const bool bad = (lower & (!(b > 0.0) | !(bp > 0.0))) | (near & !(c > 0.0));
      A.s[j] = next;
      A.lo[j] = lo;
      A.hi[j] = hi;
      const Code f = A.flag[j];
      A.flag[j] = ((f == kScalar) | bad) ? kScalar : (conv ? kDone : kGoOn);
    }
    // Write out the finished rows, hand the others to the scalar solver or keep them.
    std::size_t keep = 0;
    for (std::size_t j = 0; j < m; ++j) {
      const Code f = A.flag[j];
      const std::size_t out = lo + static_cast<std::size_t>(A.row[j]);
      if (f == kDone) {
        vol[out] = A.s[j] / A.sqrtT[j];
      } else if (f == kScalar) {
        vol[out] = normalised_implied_vol(A.beta[j], A.x[j]) / A.sqrtT[j];
      } else {
        if (keep != j) {
          A.x[keep] = A.x[j];
          A.beta[keep] = A.beta[j];
          A.bmax[keep] = A.bmax[j];
          A.lnb[keep] = A.lnb[j];
          A.cb[keep] = A.cb[j];
          A.s[keep] = A.s[j];
          A.lo[keep] = A.lo[j];
          A.hi[keep] = A.hi[j];
          A.sqrtT[keep] = A.sqrtT[j];
          A.row[keep] = A.row[j];
          A.obj[keep] = A.obj[j];
        }
        ++keep;
      }
    }
    m = keep;
  }
  for (std::size_t j = 0; j < m; ++j)  // more steps than the block solver takes: rare
    vol[lo + static_cast<std::size_t>(A.row[j])] =
        normalised_implied_vol(A.beta[j], A.x[j]) / A.sqrtT[j];
}

void tally(ImpliedVolCounts& c, std::int8_t s) {
  switch (s) {
    case kIvOk:
      ++c.ok;
      break;
    case kIvBelowIntrinsic:
      ++c.below_intrinsic;
      break;
    case kIvAboveUpper:
      ++c.above_upper;
      break;
    case kIvNonPositive:
      ++c.non_positive;
      break;
    default:
      ++c.invalid_input;
      break;
  }
}

ImpliedVolCounts solve_range(const ImpliedVolBatch& in, double* vol, std::int8_t* status,
                             std::size_t lo, std::size_t hi) {
  ImpliedVolCounts c;
  alignas(64) std::int8_t st[kBlock];
  for (std::size_t b = lo; b < hi; b += kBlock) {
    const std::size_t n = b + kBlock < hi ? kBlock : hi - b;
    solve_block(in, vol, st, b, n);
    for (std::size_t j = 0; j < n; ++j) tally(c, st[j]);
    if (status)
      for (std::size_t j = 0; j < n; ++j) status[b + j] = st[j];
  }
  return c;
}

}  // namespace

std::int8_t implied_vol_scalar(double price, double spot, double strike, double expiry, double rate,
                               double dividend, std::int8_t type, Model model,
                               double& vol) noexcept {
  const bool b76 = model == Model::Black76;
  return implied_vol_one(price, spot, strike, expiry, rate, b76 ? 0.0 : dividend, type, b76, &vol);
}

ImpliedVolCounts implied_vol(const ImpliedVolBatch& in, double* vol, std::int8_t* status,
                             int threads) {
  if (in.n > 0 && vol == nullptr) throw std::invalid_argument("implied_vol: vol output is null");
  const std::size_t n = in.n;
#if defined(_OPENMP)
  if (n >= kParallelMin && threads != 1) {
    const int nt = ::tradecore::detail::resolve_threads(threads);
    constexpr std::size_t kChunk = 1024;
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    std::size_t ok = 0, below = 0, above = 0, nonpos = 0, invalid = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) \
    reduction(+ : ok, below, above, nonpos, invalid)
    for (std::size_t b = 0; b < chunks; ++b) {
      const std::size_t lo = b * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
      const ImpliedVolCounts c = solve_range(in, vol, status, lo, hi);
      ok += c.ok;
      below += c.below_intrinsic;
      above += c.above_upper;
      nonpos += c.non_positive;
      invalid += c.invalid_input;
    }
    return ImpliedVolCounts{ok, below, above, nonpos, invalid};
  }
#else
  (void)threads;
#endif
  return solve_range(in, vol, status, 0, n);
}

}  // namespace tradecore::pricing
