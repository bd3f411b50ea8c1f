// CUDA implementation of the GPU entry points declared in tradecore/cuda.hpp.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tradecore/cuda.hpp"

namespace tradecore::cuda {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

// Columns: 0 price, 1 delta, 2 gamma, 3 vega, 4 theta, 5 rho, 6 phi.
__global__ void bsm_kernel(const double* __restrict__ in, const std::int8_t* __restrict__ type,
                           double* __restrict__ out, unsigned mask, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const double S = in[i], K = in[n + i], T0 = in[2 * n + i];
  const double r = in[3 * n + i], q = in[4 * n + i], v = in[5 * n + i];
  const double w = type[i] > 0 ? 1.0 : -1.0;
  const bool expired = !(T0 > 0.0);
  const double T = expired ? 1.0 : T0;
  const double sqrtT = sqrt(T);
  const double vsT = v * sqrtT;
  const double d1 = (log(S / K) + (r - q + 0.5 * v * v) * T) / vsT;
  const double d2 = d1 - vsT;
  const double dfq = exp(-q * T), dfr = exp(-r * T);
  const double Nd1 = 0.5 * erfc(-w * d1 * kInvSqrt2);
  const double Nd2 = 0.5 * erfc(-w * d2 * kInvSqrt2);
  const double nd1 = kInvSqrt2Pi * exp(-0.5 * d1 * d1);
  const double Sq = S * dfq, Kr = K * dfr;
  double g[7];
  g[0] = w * (Sq * Nd1 - Kr * Nd2);
  g[1] = w * dfq * Nd1;
  g[2] = dfq * nd1 / (S * vsT);
  g[3] = Sq * nd1 * sqrtT;
  g[4] = -Sq * nd1 * v / (2.0 * sqrtT) - w * r * Kr * Nd2 + w * q * Sq * Nd1;
  g[5] = w * Kr * T * Nd2;
  g[6] = -w * Sq * T * Nd1;
  if (expired) {
    const double diff = w * (S - K);
    g[0] = diff > 0.0 ? diff : 0.0;
    g[1] = S == K ? 0.5 * w : (diff > 0.0 ? w : 0.0);
    for (int k = 2; k < 7; ++k) g[k] = 0.0;
  }
  for (int k = 0; k < 7; ++k)
    if (mask & (1u << k)) out[k * n + i] = g[k];
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

void bsm_european(const pricing::EuropeanBatch& in, const pricing::EuropeanOut& out) {
  pricing::validate(in);
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::size_t n = in.n;
  if (n == 0) return;
  std::vector<double> host(6 * n);
  std::vector<std::int8_t> types(n);
  for (std::size_t i = 0; i < n; ++i) {
    host[i] = in.spot[i];
    host[n + i] = in.strike[i];
    host[2 * n + i] = in.expiry[i];
    host[3 * n + i] = in.rate[i];
    host[4 * n + i] = in.dividend[i];
    host[5 * n + i] = in.vol[i];
    types[i] = in.type[i];
  }
  double* cols[7] = {out.price, out.delta, out.gamma, out.vega, out.theta, out.rho, out.phi};
  unsigned mask = 0;
  for (int k = 0; k < 7; ++k)
    if (cols[k]) mask |= 1u << k;
  DeviceBuffer<double> d_in(6 * n), d_out(7 * n);
  DeviceBuffer<std::int8_t> d_type(n);
  check(cudaMemcpy(d_in.p, host.data(), 6 * n * sizeof(double), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_type.p, types.data(), n, cudaMemcpyHostToDevice), "copy");
  const unsigned block = 256;
  const auto grid = static_cast<unsigned>((n + block - 1) / block);
  bsm_kernel<<<grid, block>>>(d_in.p, d_type.p, d_out.p, mask, n);
  check(cudaGetLastError(), "launch");
  check(cudaDeviceSynchronize(), "kernel");
  for (int k = 0; k < 7; ++k)
    if (cols[k])
      check(cudaMemcpy(cols[k], d_out.p + k * n, n * sizeof(double), cudaMemcpyDeviceToHost),
            "copy back");
}

}  // namespace tradecore::cuda
