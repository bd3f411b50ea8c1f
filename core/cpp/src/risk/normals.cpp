// Batches of the risk stream's standard normals on the CPU: OpenMP over chunks of paths, each
// block of two variables generated once (tradecore/risk/philox.hpp).
#include "tradecore/risk/normals.hpp"

#include "../threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tradecore/risk/philox.hpp"

namespace tradecore::risk {

void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out, int threads) {
  validate_normals(first_path, paths, factors);
  const auto n = static_cast<std::int64_t>(paths);
  const std::uint64_t pairs = factors / 2;
  const bool odd = (factors & 1u) != 0;
#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static)
#else
  (void)threads;
#endif
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t path = first_path + static_cast<std::uint64_t>(i);
    double* row = out + static_cast<std::uint64_t>(i) * factors;
    double z[2];
    for (std::uint64_t p = 0; p < pairs; ++p) {
      box_muller(normal_block(seed, path, static_cast<std::uint32_t>(2 * p)), z);
      row[2 * p] = z[0];
      row[2 * p + 1] = z[1];
    }
    if (odd) {
      box_muller(normal_block(seed, path, static_cast<std::uint32_t>(factors - 1)), z);
      row[factors - 1] = z[0];
    }
  }
}

}  // namespace tradecore::risk
