#pragma once
// The risk kernels' one random stream: Philox 4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel
// random numbers: as easy as 1, 2, 3", SC11), a counter-based generator - a pure function of a
// 128-bit counter and a 64-bit key - so any draw can be produced on its own, by any thread, on
// the CPU or the GPU. Written once for both: every function is TC_HOST_DEVICE, uses only
// integer arithmetic (the 32x32->64 multiply gives mulhi and mullo) and, for the normals,
// log/sqrt/sin/cos. No std:: containers, so nvcc compiles it without extra flags.
//
// Keying: the normal of Monte-Carlo path `path` and variable (factor) `variable` under `seed`
// comes from the block
//   counter = {path low 32 bits, path high 32 bits, variable / 2, 0}, key = {seed low, seed high}
// whose four words make two uniforms and, by Box-Muller, two normals: the even variable takes
// the cosine one, the odd variable the sine one. The integer part is bit-identical everywhere;
// the normals then depend on the platform's log/sqrt/sin/cos (glibc on the host, CUDA's libdevice
// on the GPU; both within a few ulp), so host and device normals agree to about 1e-15
// relative, not bit for bit.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TC_HOST_DEVICE __host__ __device__
#else
#define TC_HOST_DEVICE
#endif

namespace tradecore::risk {

struct PhiloxCounter {
  std::uint32_t v[4];
};

struct PhiloxKey {
  std::uint32_t v[2];
};

namespace philox_detail {

inline constexpr std::uint32_t kM0 = 0xD2511F53u;  // round multipliers
inline constexpr std::uint32_t kM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kW0 = 0x9E3779B9u;  // key schedule (Weyl) increments
inline constexpr std::uint32_t kW1 = 0xBB67AE85u;

TC_HOST_DEVICE inline void round(std::uint32_t (&x)[4], std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * x[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * x[2];
  const std::uint32_t y0 = static_cast<std::uint32_t>(p1 >> 32) ^ x[1] ^ k0;
  const std::uint32_t y1 = static_cast<std::uint32_t>(p1);
  const std::uint32_t y2 = static_cast<std::uint32_t>(p0 >> 32) ^ x[3] ^ k1;
  const std::uint32_t y3 = static_cast<std::uint32_t>(p0);
  x[0] = y0;
  x[1] = y1;
  x[2] = y2;
  x[3] = y3;
}

}  // namespace philox_detail

// One Philox 4x32-10 block: ten rounds, the key bumped by the Weyl constants between rounds.
TC_HOST_DEVICE inline PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key) {
  std::uint32_t x[4] = {ctr.v[0], ctr.v[1], ctr.v[2], ctr.v[3]};
  std::uint32_t k0 = key.v[0];
  std::uint32_t k1 = key.v[1];
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += philox_detail::kW0;
      k1 += philox_detail::kW1;
    }
    philox_detail::round(x, k0, k1);
  }
  return PhiloxCounter{{x[0], x[1], x[2], x[3]}};
}

// Two 32-bit words to a double in the open interval (0, 1): the top 52 bits m of (hi:lo) give
// (m + 0.5) * 2^-52, which is exact in a double and never 0 or 1 (so log() below is finite).
TC_HOST_DEVICE inline double uniform_open(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t m = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 12;
  return (static_cast<double>(m) + 0.5) * 0x1p-52;
}

// The block of `path` and variables (2 * (variable / 2), +1) under `seed` (see the file comment).
TC_HOST_DEVICE inline PhiloxCounter normal_block(std::uint64_t seed, std::uint64_t path,
                                                 std::uint32_t variable) {
  const PhiloxCounter ctr{{static_cast<std::uint32_t>(path), static_cast<std::uint32_t>(path >> 32),
                           variable / 2u, 0u}};
  const PhiloxKey key{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  return philox4x32_10(ctr, key);
}

// Box-Muller on one block: out[0] (even variable) = r cos(2 pi u2), out[1] (odd) = r sin(2 pi u2)
// with r = sqrt(-2 log u1). No multiply-add is contractible here, so -ffp-contract / --fmad do not
// change the result; only the math library does.
TC_HOST_DEVICE inline void box_muller(const PhiloxCounter& b, double (&out)[2]) {
  const double u1 = uniform_open(b.v[0], b.v[1]);
  const double u2 = uniform_open(b.v[2], b.v[3]);
  const double r = sqrt(-2.0 * log(u1));
  const double theta = 6.283185307179586476925286766559 * u2;
  out[0] = r * cos(theta);
  out[1] = r * sin(theta);
}

// The standard normal of (seed, path, variable): independent of every other draw and of how a
// batch is split between threads, calls or devices.
TC_HOST_DEVICE inline double normal(std::uint64_t seed, std::uint64_t path,
                                    std::uint32_t variable) {
  double z[2];
  box_muller(normal_block(seed, path, variable), z);
  return z[variable & 1u];
}

}  // namespace tradecore::risk
