// The risk stream's standard normals on the GPU: the same header as the CPU
// (tradecore/risk/philox.hpp), one thread per Philox block (a path's pair of variables).
#include <cuda_runtime.h>

#include <cstdint>

#include "device.cuh"
#include "tradecore/cuda.hpp"
#include "tradecore/risk/normals.hpp"
#include "tradecore/risk/philox.hpp"

namespace tradecore::cuda {
namespace {

// out is paths x factors row-major; block b = i * pairs + p covers variables 2p and 2p + 1 of
// path first_path + i (only 2p when factors is odd and p is the last pair).
__global__ void philox_normals_kernel(std::uint64_t seed, std::uint64_t first_path,
                                      std::uint64_t paths, std::uint64_t factors,
                                      double* __restrict__ out) {
  const std::uint64_t pairs = (factors + 1) / 2;
  const std::uint64_t b = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= paths * pairs) return;
  const std::uint64_t i = b / pairs, p = b % pairs, j = 2 * p;
  double z[2];
  risk::box_muller(risk::normal_block(seed, first_path + i, static_cast<std::uint32_t>(j)), z);
  double* row = out + i * factors;
  row[j] = z[0];
  if (j + 1 < factors) row[j + 1] = z[1];
}

}  // namespace

void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out) {
  risk::validate_normals(first_path, paths, factors);
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::uint64_t n = paths * factors;
  const std::uint64_t blocks = paths * ((factors + 1) / 2);
  detail::DeviceBuffer<double> d_out(n);
  const int threads = 256;
  const auto grid = static_cast<unsigned>((blocks + threads - 1) / threads);
  philox_normals_kernel<<<grid, threads>>>(seed, first_path, paths, factors, d_out.p);
  detail::check(cudaGetLastError(), "launch");
  detail::check(cudaDeviceSynchronize(), "kernel");
  detail::check(cudaMemcpy(out, d_out.p, n * sizeof(double), cudaMemcpyDeviceToHost), "copy back");
}

}  // namespace tradecore::cuda
