// CUDA implementation of the GPU entry points declared in tradecore/cuda.hpp.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "device.cuh"
#include "tradecore/cuda.hpp"

namespace tradecore::cuda {
namespace {

constexpr int kCols = pricing::kNumEuropeanColumns;

using detail::check;
using detail::DeviceBuffer;

// in: 6 columns of n (S, K, T, r, q, sigma); out: kCols columns of n, written where mask has
// the column's bit. Every row uses the accurate scalar kernel shared with the CPU.
__global__ void european_kernel(const double* __restrict__ in, const std::int8_t* __restrict__ type,
                                double* __restrict__ out, unsigned mask, bool black76,
                                std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  double g[kCols];
  pricing::european_greeks(in[i], in[n + i], in[2 * n + i], in[3 * n + i], in[4 * n + i],
                           in[5 * n + i], type[i] > 0 ? 1.0 : -1.0, black76, g);
  for (int k = 0; k < kCols; ++k)
    if (mask & (1u << k)) out[k * n + i] = g[k];
}

// in: 6 columns of n (price, S, K, T, r, q).
__global__ void implied_vol_kernel(const double* __restrict__ in,
                                   const std::int8_t* __restrict__ type, double* __restrict__ vol,
                                   std::int8_t* __restrict__ status, bool black76, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  status[i] = pricing::implied_vol_one(in[i], in[n + i], in[2 * n + i], in[3 * n + i],
                                       in[4 * n + i], in[5 * n + i], type[i], black76, &vol[i]);
}

}  // namespace

bool compiled() noexcept { return true; }

bool available() noexcept {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return false;
  }
  return count > 0;
}

std::string describe() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device: ") + cudaGetErrorString(e);
  }
  if (count == 0) return "no CUDA device";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "CUDA device 0 (no properties)";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ", " + std::to_string(count) + " device(s))";
}

void european(const pricing::EuropeanBatch& in, const pricing::EuropeanOut& out) {
  pricing::validate(in);
  if (in.model == pricing::Model::Black76 && out.phi)
    throw std::invalid_argument("phi (dV/dq) is not defined for Black-76");
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::size_t n = in.n;
  if (n == 0) return;
  const bool b76 = in.model == pricing::Model::Black76;
  std::vector<double> host(6 * n);
  std::vector<std::int8_t> types(n);
  for (std::size_t i = 0; i < n; ++i) {
    host[i] = in.spot[i];
    host[n + i] = in.strike[i];
    host[2 * n + i] = in.expiry[i];
    host[3 * n + i] = in.rate[i];
    host[4 * n + i] = b76 ? 0.0 : in.dividend[i];
    host[5 * n + i] = in.vol[i];
    types[i] = in.type[i];
  }
  double* cols[kCols] = {out.price,      out.delta,      out.gamma,     out.vega,   out.theta,
                         out.rho,        out.phi,        out.vanna,     out.charm,  out.vomma,
                         out.speed,      out.color,      out.zomma,     out.ultima, out.veta,
                         out.dual_delta, out.dual_gamma, out.elasticity};
  unsigned mask = 0;
  for (int k = 0; k < kCols; ++k)
    if (cols[k]) mask |= 1u << k;
  DeviceBuffer<double> d_in(6 * n), d_out(static_cast<std::size_t>(kCols) * n);
  DeviceBuffer<std::int8_t> d_type(n);
  check(cudaMemcpy(d_in.p, host.data(), 6 * n * sizeof(double), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_type.p, types.data(), n, cudaMemcpyHostToDevice), "copy");
  const unsigned block = 128;
  const auto grid = static_cast<unsigned>((n + block - 1) / block);
  european_kernel<<<grid, block>>>(d_in.p, d_type.p, d_out.p, mask, b76, n);
  check(cudaGetLastError(), "launch");
  check(cudaDeviceSynchronize(), "kernel");
  for (int k = 0; k < kCols; ++k)
    if (cols[k])
      check(cudaMemcpy(cols[k], d_out.p + k * n, n * sizeof(double), cudaMemcpyDeviceToHost),
            "copy back");
}

pricing::ImpliedVolCounts implied_vol(const pricing::ImpliedVolBatch& in, double* vol,
                                      std::int8_t* status) {
  if (in.n > 0 && vol == nullptr) throw std::invalid_argument("implied_vol: vol output is null");
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::size_t n = in.n;
  pricing::ImpliedVolCounts c;
  if (n == 0) return c;
  const bool b76 = in.model == pricing::Model::Black76;
  std::vector<double> host(6 * n);
  std::vector<std::int8_t> types(n), st(n);
  for (std::size_t i = 0; i < n; ++i) {
    host[i] = in.price[i];
    host[n + i] = in.spot[i];
    host[2 * n + i] = in.strike[i];
    host[3 * n + i] = in.expiry[i];
    host[4 * n + i] = in.rate[i];
    host[5 * n + i] = b76 ? 0.0 : in.dividend[i];
    types[i] = in.type[i];
  }
  DeviceBuffer<double> d_in(6 * n), d_vol(n);
  DeviceBuffer<std::int8_t> d_type(n), d_status(n);
  check(cudaMemcpy(d_in.p, host.data(), 6 * n * sizeof(double), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_type.p, types.data(), n, cudaMemcpyHostToDevice), "copy");
  const unsigned block = 128;
  const auto grid = static_cast<unsigned>((n + block - 1) / block);
  implied_vol_kernel<<<grid, block>>>(d_in.p, d_type.p, d_vol.p, d_status.p, b76, n);
  check(cudaGetLastError(), "launch");
  check(cudaDeviceSynchronize(), "kernel");
  check(cudaMemcpy(vol, d_vol.p, n * sizeof(double), cudaMemcpyDeviceToHost), "copy back");
  check(cudaMemcpy(st.data(), d_status.p, n, cudaMemcpyDeviceToHost), "copy back");
  for (std::size_t i = 0; i < n; ++i) {
    if (status) status[i] = st[i];
    switch (st[i]) {
      case pricing::kIvOk:
        ++c.ok;
        break;
      case pricing::kIvBelowIntrinsic:
        ++c.below_intrinsic;
        break;
      case pricing::kIvAboveUpper:
        ++c.above_upper;
        break;
      case pricing::kIvNonPositive:
        ++c.non_positive;
        break;
      default:
        ++c.invalid_input;
        break;
    }
  }
  return c;
}

}  // namespace tradecore::cuda
