// Include math.h first with the SIMD declarations of glibc's libmvec exposed, so that the
// batch loops below vectorise exp/log/erfc (4-ulp vector variants) without -ffast-math.
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
#include <sstream>
#include <stdexcept>
#include <string>

#include "../threads.hpp"
#include "tradecore/pricing/black_kernels.hpp"
#include "tradecore/pricing/european.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace tradecore::pricing {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr std::size_t kParallelMin = 16384;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using ::tradecore::detail::resolve_threads;

constexpr std::size_t kChunk = 1024;

// The output columns of `o` in EuropeanColumn order.
void columns(const EuropeanOut& o, double* (&cols)[kNumEuropeanColumns]) {
  double* const all[kNumEuropeanColumns] = {
      o.price, o.delta,  o.gamma, o.vega,       o.theta,      o.rho,
      o.phi,   o.vanna,  o.charm, o.vomma,      o.speed,      o.color,
      o.zomma, o.ultima, o.veta,  o.dual_delta, o.dual_gamma, o.elasticity};
  for (int k = 0; k < kNumEuropeanColumns; ++k) cols[k] = all[k];
}

// Recomputes row i of the outputs accurately: every output, or (price_only) the price and the
// outputs derived from it; oc[k] + i is where output k of the row goes (null: not requested).
// Out of line: rare rows, and it keeps the vector loop simple.
template <bool kBlack76>
[[gnu::noinline]] void fix_row(double S, double K, double T, double r, double q, double v, double w,
                               bool price_only, double* const* oc, std::size_t i) {
  if (price_only) {
    const double qq = kBlack76 ? r : q;
    const double x = detail::log_moneyness(S, K) + (r - qq) * T;
    const double s = v * std::sqrt(T);
    const double price =
        std::sqrt(S * K) * std::exp(-0.5 * (qq + r) * T) * normalised_black(w * x, s);
    if (oc[kPrice]) oc[kPrice][i] = price;
    if (kBlack76 && oc[kRho]) oc[kRho][i] = -T * price;
    if (oc[kElasticity]) {
      const double delta = w * std::exp(-qq * T) * math::norm_cdf(w * (x / s + 0.5 * s));
      oc[kElasticity][i] = price > 0.0 ? delta * S / price : 0.0;
    }
    return;
  }
  double g[kNumEuropeanColumns];
  european_greeks(S, K, T, r, q, v, w, kBlack76, g);
  for (int k = 0; k < kNumEuropeanColumns; ++k)
    if (oc[k]) oc[k][i] = g[k];
}

// The normalisation of one row for fix_prices with the scalar libm (out of line, so that the
// compiler does not vectorise it with the vector libm): w x (x = ln(F/K)), s = sigma sqrt(T),
// the discounted sqrt(S K) and the intrinsic part 2 sinh(w x / 2) of the normalised price.
template <bool kBlack76>
[[gnu::noinline]] void normalise_row(double S, double K, double T, double r, double q, double v,
                                     double w, double& x, double& s, double& pref,
                                     double& intrinsic) {
  const double qq = kBlack76 ? r : q;
  x = w * (detail::log_moneyness(S, K) + (r - qq) * T);
  s = v * std::sqrt(T);
  pref = std::sqrt(S * K) * std::exp(-0.5 * (qq + r) * T);
  intrinsic = x > 0.0 ? 2.0 * std::sinh(0.5 * x) : 0.0;
}

// Accurate prices of rows idx[0..nf) of a chunk (the rows whose closed form cancels): the
// normalisation (x, the discounting, the intrinsic value) with the scalar libm, then the
// out-of-the-money normalised Black b(-|x|, s) for all rows at once from one exp and one
// erfcx pair (math::erfcx_pair_nonneg takes the difference below s_c without cancellation;
// above it b = e^{x/2} - E/2 (erfcx + erfcx) cancels by < 5 bits for t >= 1/8). Rows above
// s_c with t < 1/8 (the small-t series) take the scalar normalised_black_otm.
template <bool kBlack76>
[[gnu::noinline]] void fix_prices(const double* pS, const double* pK, const double* pT,
                                  const double* pr, const double* pq, const double* pv,
                                  const double* wbuf, const std::int64_t* idx, std::size_t nf,
                                  double* const* fc) {
  alignas(64) double xo[kChunk], sv[kChunk], pref[kChunk], intr[kChunk], bv[kChunk];
  alignas(64) double xs[kChunk];
  for (std::size_t i = 0; i < nf; ++i) {
    const std::size_t j = static_cast<std::size_t>(idx[i]);
    normalise_row<kBlack76>(pS[j], pK[j], pT[j], pr[j], pq[j], pv[j], wbuf[j], xs[i], sv[i],
                            pref[i], intr[i]);
    xo[i] = -std::fabs(xs[i]);
  }
  // Whole vectors only (padding: copies of the first row): every row takes the vector libm
  // whatever its position in the list (a scalar remainder loop would give it other last bits).
  const std::size_t np = (nf + 7) / 8 * 8;
  for (std::size_t i = nf; i < np; ++i) {
    xo[i] = xo[0];
    sv[i] = sv[0];
  }
#pragma omp simd
  for (std::size_t i = 0; i < np; ++i) {
    const double x = xo[i], s = sv[i];
    const double h = x / s, t = 0.5 * s;
    const double E = detail::exp_half_sum_squares_neg(h, t);
    const double a = h + t;
    const double dz = (a <= 0.0 ? -s : 2.0 * h) * math::kInvSqrt2Hi;  // z1 - z2
    double f1, f2;
    const double diff = math::erfcx_pair_nonneg(fabs(a) * math::kInvSqrt2Hi,
                                                (t - h) * math::kInvSqrt2Hi, dz, &f1, &f2);
    const double above = (exp(0.5 * x) - 0.5 * E * f1) - 0.5 * E * f2;
    // NaN marks the rows left to the scalar kernel (above s_c at small t).
    bv[i] = a <= 0.0 ? 0.5 * E * diff : (t < detail::kSmallT ? kNaN : above);
  }
  for (std::size_t i = 0; i < nf; ++i) {
    const std::size_t j = static_cast<std::size_t>(idx[i]);
    const double b = bv[i] == bv[i] ? bv[i] : normalised_black_otm(xo[i], sv[i]);
    const double price = pref[i] * (intr[i] + b);
    if (fc[kPrice]) fc[kPrice][j] = price;
    if (kBlack76 && fc[kRho]) fc[kRho][j] = -pT[j] * price;
    if (fc[kElasticity]) {
      const double w = wbuf[j], S = pS[j], T = pT[j];
      const double qq = kBlack76 ? pr[j] : pq[j];
      // N(w d1), w d1 = w x / s + w s / 2 (xs holds w x).
      const double d1w = xs[i] / sv[i] + 0.5 * w * sv[i];
      const double delta = w * std::exp(-qq * T) * math::norm_cdf(d1w);
      fc[kElasticity][j] = price > 0.0 ? delta * S / price : 0.0;
    }
  }
}

// Copies m doubles to dst with non-temporal (streaming) stores: a large batch's outputs go
// to memory without first being read into the cache (no read-for-ownership traffic).
void stream_copy(double* dst, const double* src, std::size_t m) {
  std::size_t j = 0;
#if defined(__AVX512F__)
  while (j < m && (reinterpret_cast<std::uintptr_t>(dst + j) & 63) != 0) {
    dst[j] = src[j];
    ++j;
  }
  for (; j + 8 <= m; j += 8) _mm512_stream_pd(dst + j, _mm512_loadu_pd(src + j));
#elif defined(__AVX__)
  while (j < m && (reinterpret_cast<std::uintptr_t>(dst + j) & 31) != 0) {
    dst[j] = src[j];
    ++j;
  }
  for (; j + 4 <= m; j += 4) _mm256_stream_pd(dst + j, _mm256_loadu_pd(src + j));
#endif
  for (; j < m; ++j) dst[j] = src[j];
}

void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX__)
  _mm_sfence();  // order the streaming stores before anything that follows
#endif
}

// One chunk of at most kChunk rows: inputs are gathered into contiguous buffers when strided,
// unrequested outputs go to scratch, so the loop below is branch-free and vectorises (with
// glibc's libmvec vector exp/log/erfc where available). kAll adds the second- and third-order
// Greeks; kBlack76 reads spot as the forward. Rows whose closed forms would lose accuracy are
// flagged and recomputed: cancelling prices in one vector pass (fix_prices), normal tails by
// the scalar accurate kernel (fix_row). `stream`: write the first-order columns with streaming
// stores. Returns the number of invalid rows in the chunk (their outputs are unspecified).
template <bool kAll, bool kBlack76>
int kernel_chunk(const EuropeanBatch& in, const EuropeanOut& o, std::size_t lo, std::size_t hi,
                 bool stream) {
  const std::size_t m = hi - lo;
  alignas(64) double buf[6][kChunk];
  alignas(64) double wbuf[kChunk];
  alignas(64) double fix[kChunk];
  alignas(64) double scratch[kChunk];
  const In<double>* cols[6] = {&in.spot, &in.strike, &in.expiry, &in.rate, &in.dividend, &in.vol};
  const double* src[6];
  for (int c = 0; c < 6; ++c) {
    if (kBlack76 && c == 4) {  // the dividend column is not read: the rate stands in
      src[c] = src[3];
      continue;
    }
    const In<double>& col = *cols[c];
    if (col.stride == 1) {
      src[c] = col.data + lo;
    } else {
      for (std::size_t j = 0; j < m; ++j) buf[c][j] = col[lo + j];
      src[c] = buf[c];
    }
  }
  int bad_types = 0;
  for (std::size_t j = 0; j < m; ++j) {
    const int t = in.type[lo + j];
    wbuf[j] = t > 0 ? 1.0 : -1.0;
    bad_types += (t == 1 || t == -1) ? 0 : 1;
  }
  int bad = bad_types;
  double* oc[kNumEuropeanColumns];
  columns(o, oc);
  // Where row j of the chunk goes: fc[k] + j. Streaming (large first-order batches), the
  // price and first-order columns are computed into chunk-local buffers (in L1/L2) and copied
  // out with non-temporal stores once the flagged rows are fixed.
  constexpr int kLocal = kAll ? 1 : kVanna;
  alignas(64) double local[kLocal][kChunk];
  const bool use_local = !kAll && stream;
  double* fc[kNumEuropeanColumns];
  for (int k = 0; k < kNumEuropeanColumns; ++k)
    fc[k] = oc[k] == nullptr ? nullptr : (use_local && k < kLocal ? local[k] : oc[k] + lo);
  auto dst = [&](int k) { return fc[k] ? fc[k] : scratch; };
  double* __restrict__ o_price = dst(kPrice);
  double* __restrict__ o_delta = dst(kDelta);
  double* __restrict__ o_gamma = dst(kGamma);
  double* __restrict__ o_vega = dst(kVega);
  double* __restrict__ o_theta = dst(kTheta);
  double* __restrict__ o_rho = dst(kRho);
  double* __restrict__ o_phi = dst(kPhi);
  double* __restrict__ o_vanna = dst(kVanna);
  double* __restrict__ o_charm = dst(kCharm);
  double* __restrict__ o_vomma = dst(kVomma);
  double* __restrict__ o_speed = dst(kSpeed);
  double* __restrict__ o_color = dst(kColor);
  double* __restrict__ o_zomma = dst(kZomma);
  double* __restrict__ o_ultima = dst(kUltima);
  double* __restrict__ o_veta = dst(kVeta);
  double* __restrict__ o_ddelta = dst(kDualDelta);
  double* __restrict__ o_dgamma = dst(kDualGamma);
  double* __restrict__ o_elast = dst(kElasticity);
  double* __restrict__ o_fix = fix;
  const double* __restrict__ pS = src[0];
  const double* __restrict__ pK = src[1];
  const double* __restrict__ pT = src[2];
  const double* __restrict__ pr = src[3];
  const double* __restrict__ pq = src[4];
  const double* __restrict__ pv = src[5];
#pragma omp simd reduction(+ : bad)
  for (std::size_t j = 0; j < m; ++j) {
    const double S = pS[j], K = pK[j], T0 = pT[j], r = pr[j], q = pq[j], v = pv[j];
    const bool ok = S >= kMinSpot && S <= kMaxSpot && K >= kMinStrike && K <= kMaxStrike &&
                    (T0 == 0.0 || (T0 >= kMinExpiry && T0 <= kMaxExpiry)) && r >= -kMaxAbsRate &&
                    r <= kMaxAbsRate && q >= -kMaxAbsRate && q <= kMaxAbsRate && v >= kMinVol &&
                    v <= kMaxVol;
    bad += ok ? 0 : 1;
    const double w = wbuf[j];
    const bool expired = !(T0 > 0.0);
    const double T = expired ? 1.0 : T0;
    const double sqrtT = std::sqrt(T);
    const double vsT = v * sqrtT;
    const double carry = kBlack76 ? 0.0 : r - q;
    const double d1 = (log(S / K) + (carry + 0.5 * v * v) * T) / vsT;
    const double d2 = d1 - vsT;
    const double dfq = exp(-q * T), dfr = exp(-r * T);
    const double Nd1 = 0.5 * erfc(-w * d1 * kInvSqrt2);  // N(w d1)
    const double Nd2 = 0.5 * erfc(-w * d2 * kInvSqrt2);  // N(w d2)
    const double nd1 = kInvSqrt2Pi * exp(-0.5 * d1 * d1);
    const double Sq = S * dfq, Kr = K * dfr;
    const double diff = w * (S - K);
    const double itm = diff > 0.0 ? w : 0.0;
    const double a1 = Sq * Nd1, a2 = Kr * Nd2;
    const double price = w * (a1 - a2);
    const double delta = expired ? (S == K ? 0.5 * w : itm) : w * dfq * Nd1;
    const double gamma = dfq * nd1 / (S * vsT);
    const double vega = Sq * nd1 * sqrtT;
    // Sq nd1 v / (2 sqrt T) = gamma S^2 v^2 / 2: no division.
    const double theta_vol = 0.5 * gamma * S * S * v * v;
    // Recompute accurately where the price would lose more than ~12 bits or |d| > 20 (where the
    // rounding of erfc's argument costs more than ~400 ulps).
    // >= 2: every output; 1: the price (and what derives from it) only. (Kept as a sum of
    // selects: a nested select here stops GCC from vectorising the loop.)
    const bool live = ok && !expired;
    const double tail = (live && (d1 > 20.0 || d1 < -20.0 || d2 > 20.0 || d2 < -20.0)) ? 2.0 : 0.0;
    // Each of a1, a2 carries a relative error ~(1 + d1^2/2) ulps (the rounding of d1 moves
    // N(d1) by d1 * dd1); the cancellation multiplies it by (a1 + a2)/price.
    // Rows losing more than 12 bits this way (~1.4% of a random book) are recomputed; the rest
    // keep ~2e-12 relative at worst (typically ~1e-15).
    const double cancel = (live && price * 4096.0 < (a1 + a2) * (1.0 + 0.5 * d1 * d1)) ? 1.0 : 0.0;
    o_fix[j] = tail + cancel;
    o_price[j] = expired ? (diff > 0.0 ? diff : 0.0) : price;
    o_delta[j] = delta;
    o_gamma[j] = expired ? 0.0 : gamma;
    o_vega[j] = expired ? 0.0 : vega;
    o_theta[j] = expired ? 0.0 : -theta_vol - w * r * a2 + w * q * a1;
    if constexpr (kBlack76) {
      o_rho[j] = expired ? 0.0 : -T * price;
      o_phi[j] = std::numeric_limits<double>::quiet_NaN();
    } else {
      o_rho[j] = expired ? 0.0 : w * a2 * T;
      o_phi[j] = expired ? 0.0 : -w * a1 * T;
    }
    if constexpr (kAll) {
      const double nd2 = kInvSqrt2Pi * exp(-0.5 * d2 * d2);
      const double dd1dT = carry / vsT - d2 / (2.0 * T);
      const double d1d2 = d1 * d2;
      o_vanna[j] = expired ? 0.0 : -dfq * nd1 * d2 / v;
      o_charm[j] = expired ? 0.0 : w * q * dfq * Nd1 - dfq * nd1 * dd1dT;
      o_vomma[j] = expired ? 0.0 : vega * d1d2 / v;
      o_speed[j] = expired ? 0.0 : -gamma / S * (d1 / vsT + 1.0);
      o_color[j] = expired ? 0.0 : gamma * (q + 0.5 / T + d1 * dd1dT);
      o_zomma[j] = expired ? 0.0 : gamma * (d1d2 - 1.0) / v;
      o_ultima[j] = expired ? 0.0 : -vega / (v * v) * (d1d2 * (1.0 - d1d2) + d1 * d1 + d2 * d2);
      o_veta[j] = expired ? 0.0 : vega * (q + d1 * dd1dT - 0.5 / T);
      o_ddelta[j] = expired ? -delta : -w * dfr * Nd2;
      o_dgamma[j] = expired ? 0.0 : dfr * nd2 / (K * vsT);
      const double pv0 = expired ? (diff > 0.0 ? diff : 0.0) : price;
      o_elast[j] = pv0 > 0.0 ? delta * S / pv0 : 0.0;
    }
  }
  // Accurate recomputation of the flagged rows (rare in practice: deep out of the money).
  // Tail rows (fix == 2) get every output from the scalar kernel; price-only rows (fix == 1)
  // are gathered and their normalised Black prices computed in one vector pass.
  alignas(64) std::int64_t idx[kChunk];
  std::size_t nf = 0;
  auto visit = [&](std::size_t j) {
    if (fix[j] == 1.0) {
      idx[nf++] = static_cast<std::int64_t>(j);
    } else if (fix[j] != 0.0) {
      fix_row<kBlack76>(pS[j], pK[j], pT[j], pr[j], pq[j], pv[j], wbuf[j], false, fc, j);
    }
  };
  std::size_t j0 = 0;
#if defined(__AVX512F__)
  // Eight flags per compare: a chunk has ~1.4% flagged rows on a random book.
  for (; j0 + 8 <= m; j0 += 8) {
    unsigned mask = _mm512_cmp_pd_mask(_mm512_load_pd(fix + j0), _mm512_setzero_pd(), _CMP_NEQ_UQ);
    while (mask != 0) {
      visit(j0 + static_cast<std::size_t>(__builtin_ctz(mask)));
      mask &= mask - 1;
    }
  }
#endif
  for (; j0 < m; ++j0) visit(j0);
  if (nf > 0) fix_prices<kBlack76>(pS, pK, pT, pr, pq, pv, wbuf, idx, nf, fc);
  if (use_local) {
    for (int k = 0; k < kLocal; ++k)
      if (oc[k]) stream_copy(oc[k] + lo, local[k], m);
    stream_fence();
  }
  return bad;
}

// Whether any column beyond price and the first-order Greeks is requested.
bool wants_higher(const EuropeanOut& o) {
  double* oc[kNumEuropeanColumns];
  columns(o, oc);
  for (int k = kVanna; k < kNumEuropeanColumns; ++k)
    if (oc[k]) return true;
  return false;
}

int dispatch_chunk(const EuropeanBatch& in, const EuropeanOut& o, std::size_t lo, std::size_t hi,
                   bool all, bool stream) {
  const bool b76 = in.model == Model::Black76;
  if (all)
    return b76 ? kernel_chunk<true, true>(in, o, lo, hi, stream)
               : kernel_chunk<true, false>(in, o, lo, hi, stream);
  return b76 ? kernel_chunk<false, true>(in, o, lo, hi, stream)
             : kernel_chunk<false, false>(in, o, lo, hi, stream);
}

// Batches at least this long have their outputs written with streaming stores (each output
// column is then larger than a core's share of the L2 cache, so it would not stay cached).
constexpr std::size_t kStreamMin = std::size_t{1} << 18;

std::size_t kernel(const EuropeanBatch& in, const EuropeanOut& o, std::size_t lo, std::size_t hi,
                   bool all) {
  const bool stream = in.n >= kStreamMin;
  std::size_t bad = 0;
  for (std::size_t c = lo; c < hi; c += kChunk)
    bad += static_cast<std::size_t>(
        dispatch_chunk(in, o, c, c + kChunk < hi ? c + kChunk : hi, all, stream));
  return bad;
}

// Runs the kernel over the batch, chunks spread over threads; returns the invalid-row count.
std::size_t run(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  if (in.model == Model::Black76 && out.phi)
    throw std::invalid_argument("phi (dV/dq) is not defined for Black-76");
  const std::size_t n = in.n;
  const bool all = wants_higher(out);
  if (n < kParallelMin || threads == 1) return kernel(in, out, 0, n, all);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  const int nt = resolve_threads(threads);
  std::size_t bad = 0;
  // Dynamic scheduling in runs of 8 chunks: on a shared machine a thread whose core is busy
  // with another process takes fewer chunks instead of making the other wait at the end.
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt) reduction(+ : bad)
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    bad += kernel(in, out, lo, hi, all);
  }
  return bad;
}

}  // namespace

const char* field_name(EuropeanField f) noexcept {
  switch (f) {
    case EuropeanField::Spot:
      return "spot";
    case EuropeanField::Strike:
      return "strike";
    case EuropeanField::Expiry:
      return "expiry";
    case EuropeanField::Rate:
      return "rate";
    case EuropeanField::Dividend:
      return "dividend";
    case EuropeanField::Vol:
      return "volatility";
    case EuropeanField::Type:
      return "option_type";
  }
  return "?";
}

bool check(const EuropeanBatch& in, Invalid& bad) noexcept {
  // The rule texts spell out the bounds of european.hpp (kept in step with them).
  constexpr const char* kSpotRule = "must be finite and in [1e-08, 1e+15]";
  constexpr const char* kStrikeRule = "must be finite and in [1e-100, 1e+100]";
  constexpr const char* kExpiryRule = "must be finite and 0 or in [1e-12, 100] (years)";
  constexpr const char* kRateRule = "must be finite and in [-2, 2]";
  constexpr const char* kVolRule = "must be finite and in [1e-08, 100]";
  auto fail = [&](EuropeanField f, std::size_t i, double v, const char* rule) {
    bad = Invalid{f, i, v, rule};
    return false;
  };
  for (std::size_t i = 0; i < in.n; ++i) {
    const double S = in.spot[i], K = in.strike[i], T = in.expiry[i];
    const double r = in.rate[i], v = in.vol[i];
    const double q = in.model == Model::Black76 ? 0.0 : in.dividend[i];
    if (!spot_ok(S)) return fail(EuropeanField::Spot, i, S, kSpotRule);
    if (!strike_ok(K)) return fail(EuropeanField::Strike, i, K, kStrikeRule);
    if (!expiry_ok(T)) return fail(EuropeanField::Expiry, i, T, kExpiryRule);
    if (!rate_ok(r)) return fail(EuropeanField::Rate, i, r, kRateRule);
    if (!rate_ok(q)) return fail(EuropeanField::Dividend, i, q, kRateRule);
    if (!vol_ok(v)) return fail(EuropeanField::Vol, i, v, kVolRule);
    const std::int8_t t = in.type[i];
    if (t != kCall && t != kPut)
      return fail(EuropeanField::Type, i, t, "must be +1 (call) or -1 (put)");
  }
  return true;
}

void validate(const EuropeanBatch& in) {
  Invalid b{};
  if (check(in, b)) return;
  std::ostringstream os;
  os.precision(17);
  os << field_name(b.field) << '[' << b.row << "] " << b.rule << " (got " << b.value << ')';
  throw std::invalid_argument(os.str());
}

void european_unchecked(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  (void)run(in, out, threads);
}

void european(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  // Validation is fused into the pricing pass (the inputs are read once); the slow scan that
  // names the offending row runs only when a chunk reported an invalid row.
  if (run(in, out, threads) != 0) {
    validate(in);
    throw std::invalid_argument("invalid input row in the batch");
  }
}

}  // namespace tradecore::pricing
