#pragma once
// Batches of the risk stream's standard normals on the CPU (tradecore/risk/philox.hpp).
#include <cstddef>
#include <cstdint>

namespace tradecore::risk {

// The most normals one call fills (paths * factors): 2^27 doubles, 1 GiB.
inline constexpr std::uint64_t kMaxNormals = std::uint64_t{1} << 27;

// Throws std::invalid_argument (naming the argument) unless paths >= 1, factors >= 1,
// paths * factors <= kMaxNormals and first_path + paths does not pass 2^64.
void validate_normals(std::uint64_t first_path, std::uint64_t paths, std::uint64_t factors);

// out[i * factors + j] = normal(seed, first_path + i, j) for i < paths, j < factors (row-major,
// paths x factors), OpenMP over chunks of paths on `threads` threads (0: the OpenMP default).
// Every value is a pure function of (seed, path, j): the result does not depend on `threads`
// or on how a range of paths is split across calls.
void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out, int threads = 0);

}  // namespace tradecore::risk
