#pragma once
// Helpers shared by the CUDA entry points (core/cuda/*.cu): error checks and owned device memory.
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "tradecore/common.hpp"

namespace tradecore::cuda::detail {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(std::size_t count) {
    if (count) check(cudaMalloc(&p, count * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace tradecore::cuda::detail
