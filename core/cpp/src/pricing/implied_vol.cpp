#include "tradecore/pricing/implied_vol.hpp"

#include <cmath>
#include <stdexcept>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {
namespace {

constexpr std::size_t kParallelMin = 4096;

void tally(ImpliedVolCounts& c, std::int8_t s) {
  switch (s) {
    case kIvOk: ++c.ok; break;
    case kIvBelowIntrinsic: ++c.below_intrinsic; break;
    case kIvAboveUpper: ++c.above_upper; break;
    case kIvNonPositive: ++c.non_positive; break;
    default: ++c.invalid_input; break;
  }
}

ImpliedVolCounts solve_range(const ImpliedVolBatch& in, double* vol, std::int8_t* status,
                             std::size_t lo, std::size_t hi) {
  ImpliedVolCounts c;
  const bool b76 = in.model == Model::Black76;
  for (std::size_t i = lo; i < hi; ++i) {
    const double q = b76 ? 0.0 : in.dividend[i];
    const std::int8_t s = implied_vol_one(in.price[i], in.spot[i], in.strike[i], in.expiry[i],
                                          in.rate[i], q, in.type[i], b76, &vol[i]);
    if (status) status[i] = s;
    tally(c, s);
  }
  return c;
}

}  // namespace

std::int8_t implied_vol_scalar(double price, double spot, double strike, double expiry,
                               double rate, double dividend, std::int8_t type, Model model,
                               double& vol) noexcept {
  const bool b76 = model == Model::Black76;
  return implied_vol_one(price, spot, strike, expiry, rate, b76 ? 0.0 : dividend, type, b76,
                         &vol);
}

ImpliedVolCounts implied_vol(const ImpliedVolBatch& in, double* vol, std::int8_t* status,
                             int threads) {
  if (in.n > 0 && vol == nullptr) throw std::invalid_argument("implied_vol: vol output is null");
  const std::size_t n = in.n;
#if defined(_OPENMP)
  if (n >= kParallelMin && threads != 1) {
    const int nt = threads > 0 ? threads : omp_get_max_threads();
    constexpr std::size_t kBlock = 1024;
    const std::size_t blocks = (n + kBlock - 1) / kBlock;
    std::size_t ok = 0, below = 0, above = 0, nonpos = 0, invalid = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) \
    reduction(+ : ok, below, above, nonpos, invalid)
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::size_t lo = b * kBlock, hi = lo + kBlock < n ? lo + kBlock : n;
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
