#pragma once
// The thread count of a kernel's OpenMP region: the caller's (> 0) or OpenMP's default.
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::detail {

inline int resolve_threads(int threads) {
#if defined(_OPENMP)
  return threads > 0 ? threads : omp_get_max_threads();
#else
  (void)threads;
  return 1;
#endif
}

}  // namespace tradecore::detail
