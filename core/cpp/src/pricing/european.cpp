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

#include "tradecore/pricing/european.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr std::size_t kParallelMin = 16384;
constexpr double kInf = std::numeric_limits<double>::infinity();

int resolve_threads(int threads) {
#if defined(_OPENMP)
  return threads > 0 ? threads : omp_get_max_threads();
#else
  (void)threads;
  return 1;
#endif
}

constexpr std::size_t kChunk = 1024;

// One chunk of at most kChunk rows: inputs are gathered into contiguous buffers when strided,
// unrequested outputs go to scratch, so the loop below is branch-free and vectorises (with
// glibc's libmvec vector exp/log/erfc where available).
// Returns the number of invalid rows in the chunk (their outputs are unspecified).
int kernel_chunk(const EuropeanBatch& in, const EuropeanOut& o, std::size_t lo, std::size_t hi) {
  const std::size_t m = hi - lo;
  alignas(64) double buf[6][kChunk];
  alignas(64) double wbuf[kChunk];
  alignas(64) double scratch[kChunk];
  const In<double>* cols[6] = {&in.spot, &in.strike, &in.expiry, &in.rate, &in.dividend, &in.vol};
  const double* src[6];
  for (int c = 0; c < 6; ++c) {
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
  auto dst = [&](double* p) { return p ? p + lo : scratch; };
  double* __restrict__ o_price = dst(o.price);
  double* __restrict__ o_delta = dst(o.delta);
  double* __restrict__ o_gamma = dst(o.gamma);
  double* __restrict__ o_vega = dst(o.vega);
  double* __restrict__ o_theta = dst(o.theta);
  double* __restrict__ o_rho = dst(o.rho);
  double* __restrict__ o_phi = dst(o.phi);
  const double* __restrict__ pS = src[0];
  const double* __restrict__ pK = src[1];
  const double* __restrict__ pT = src[2];
  const double* __restrict__ pr = src[3];
  const double* __restrict__ pq = src[4];
  const double* __restrict__ pv = src[5];
#pragma omp simd reduction(+ : bad)
  for (std::size_t j = 0; j < m; ++j) {
    const double S = pS[j], K = pK[j], T0 = pT[j], r = pr[j], q = pq[j], v = pv[j];
    const bool ok = S > 0.0 && S < kInf && K > 0.0 && K < kInf && T0 >= 0.0 && T0 < kInf &&
                    r > -kInf && r < kInf && q > -kInf && q < kInf && v > 0.0 && v < kInf;
    bad += ok ? 0 : 1;
    const double w = wbuf[j];
    const bool expired = !(T0 > 0.0);
    const double T = expired ? 1.0 : T0;
    const double sqrtT = std::sqrt(T);
    const double vsT = v * sqrtT;
    const double d1 = (log(S / K) + (r - q + 0.5 * v * v) * T) / vsT;
    const double d2 = d1 - vsT;
    const double dfq = exp(-q * T), dfr = exp(-r * T);
    const double Nd1 = 0.5 * erfc(-w * d1 * kInvSqrt2);  // N(w d1)
    const double Nd2 = 0.5 * erfc(-w * d2 * kInvSqrt2);  // N(w d2)
    const double nd1 = kInvSqrt2Pi * exp(-0.5 * d1 * d1);
    const double Sq = S * dfq, Kr = K * dfr;
    const double diff = w * (S - K);
    const double itm = diff > 0.0 ? w : 0.0;
    o_price[j] = expired ? (diff > 0.0 ? diff : 0.0) : w * (Sq * Nd1 - Kr * Nd2);
    o_delta[j] = expired ? (S == K ? 0.5 * w : itm) : w * dfq * Nd1;
    o_gamma[j] = expired ? 0.0 : dfq * nd1 / (S * vsT);
    o_vega[j] = expired ? 0.0 : Sq * nd1 * sqrtT;
    o_theta[j] =
        expired ? 0.0 : -Sq * nd1 * v / (2.0 * sqrtT) - w * r * Kr * Nd2 + w * q * Sq * Nd1;
    o_rho[j] = expired ? 0.0 : w * Kr * T * Nd2;
    o_phi[j] = expired ? 0.0 : -w * Sq * T * Nd1;
  }
  return bad;
}

std::size_t kernel(const EuropeanBatch& in, const EuropeanOut& o, std::size_t lo,
                   std::size_t hi) {
  std::size_t bad = 0;
  for (std::size_t c = lo; c < hi; c += kChunk)
    bad += static_cast<std::size_t>(kernel_chunk(in, o, c, c + kChunk < hi ? c + kChunk : hi));
  return bad;
}

// Runs the kernel over the batch, chunks spread over threads; returns the invalid-row count.
std::size_t run(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  const std::size_t n = in.n;
  if (n < kParallelMin || threads == 1) return kernel(in, out, 0, n);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  const int nt = resolve_threads(threads);
  std::size_t bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : bad)
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    bad += kernel(in, out, lo, hi);
  }
  return bad;
}

}  // namespace

const char* field_name(EuropeanField f) noexcept {
  switch (f) {
    case EuropeanField::Spot: return "spot";
    case EuropeanField::Strike: return "strike";
    case EuropeanField::Expiry: return "expiry";
    case EuropeanField::Rate: return "rate";
    case EuropeanField::Dividend: return "dividend";
    case EuropeanField::Vol: return "volatility";
    case EuropeanField::Type: return "option_type";
  }
  return "?";
}

bool check(const EuropeanBatch& in, Invalid& bad) noexcept {
  constexpr const char* kPositive = "must be finite and > 0";
  auto fail = [&](EuropeanField f, std::size_t i, double v, const char* rule) {
    bad = Invalid{f, i, v, rule};
    return false;
  };
  for (std::size_t i = 0; i < in.n; ++i) {
    const double S = in.spot[i], K = in.strike[i], T = in.expiry[i];
    const double r = in.rate[i], q = in.dividend[i], v = in.vol[i];
    if (!(S > 0.0) || !std::isfinite(S)) return fail(EuropeanField::Spot, i, S, kPositive);
    if (!(K > 0.0) || !std::isfinite(K)) return fail(EuropeanField::Strike, i, K, kPositive);
    if (!(T >= 0.0) || !std::isfinite(T))
      return fail(EuropeanField::Expiry, i, T, "must be finite and >= 0");
    if (!std::isfinite(r)) return fail(EuropeanField::Rate, i, r, "must be finite");
    if (!std::isfinite(q)) return fail(EuropeanField::Dividend, i, q, "must be finite");
    if (!(v > 0.0) || !std::isfinite(v)) return fail(EuropeanField::Vol, i, v, kPositive);
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

void bsm_european_unchecked(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  (void)run(in, out, threads);
}

void bsm_european(const EuropeanBatch& in, const EuropeanOut& out, int threads) {
  // Validation is fused into the pricing pass (the inputs are read once); the slow scan that
  // names the offending row runs only when a chunk reported an invalid row.
  if (run(in, out, threads) != 0) {
    validate(in);
    throw std::invalid_argument("invalid input row in the batch");
  }
}

}  // namespace tradecore::pricing
