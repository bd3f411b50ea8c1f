#pragma once
// Batches of the risk stream's standard normals on the CPU (tradecore/risk/philox.hpp).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace tradecore::risk {

// The most normals one call fills (paths * factors): 2^27 doubles, 1 GiB.
inline constexpr std::uint64_t kMaxNormals = std::uint64_t{1} << 27;

// Throws std::invalid_argument (naming the argument) unless paths >= 1, factors >= 1,
// paths * factors <= kMaxNormals and first_path + paths does not pass 2^64.
// (Inline so that the CUDA entry point shares it without linking the core library.)
inline void validate_normals(std::uint64_t first_path, std::uint64_t paths, std::uint64_t factors) {
  if (paths < 1) throw std::invalid_argument("paths: must be >= 1");
  if (factors < 1) throw std::invalid_argument("factors: must be >= 1");
  if (paths > kMaxNormals || factors > kMaxNormals / paths)
    throw std::invalid_argument("paths * factors: must be <= " + std::to_string(kMaxNormals) +
                                " normals a call");
  if (first_path > std::numeric_limits<std::uint64_t>::max() - (paths - 1))
    throw std::invalid_argument("first_path: first_path + paths must be <= 2^64");
}

// out[i * factors + j] = normal(seed, first_path + i, j) for i < paths, j < factors (row-major,
// paths x factors), OpenMP over chunks of paths on `threads` threads (0: the OpenMP default).
// Every value is a pure function of (seed, path, j): the result does not depend on `threads`
// or on how a range of paths is split across calls.
void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out, int threads = 0);

}  // namespace tradecore::risk
