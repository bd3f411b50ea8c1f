#pragma once
// GPU entry points. Every function here has the same signature with and without CUDA:
// core/cuda/*.cu implement them where nvcc is found, core/cuda/no_cuda.cpp otherwise.
#include <cstdint>
#include <string>

#include "tradecore/pricing/european.hpp"
#include "tradecore/pricing/implied_vol.hpp"
#include "tradecore/risk/montecarlo.hpp"

namespace tradecore::cuda {

// True when the library was built with CUDA and a usable device is present. Never throws:
// any runtime error (no driver, insufficient driver, no device) reads as "no GPU".
bool available() noexcept;

// Whether CUDA kernels were compiled into this build.
bool compiled() noexcept;

// A one-line description of the device or of why there is none.
std::string describe();

// European batch (BSM or Black-76, any Greeks through third order) on the GPU: same inputs,
// outputs and conventions as tradecore::pricing::european (validated on the host first; every
// row uses the accurate scalar kernel of black_kernels.hpp). Throws tradecore::Error when no
// device is usable.
void european(const pricing::EuropeanBatch& in, const pricing::EuropeanOut& out);

// Implied volatilities on the GPU: same contract as tradecore::pricing::implied_vol (per-row
// status, NaN outside the bounds). Throws tradecore::Error when no device is usable.
pricing::ImpliedVolCounts implied_vol(const pricing::ImpliedVolBatch& in, double* vol,
                                      std::int8_t* status);

// The risk stream's standard normals on the GPU into host memory `out` (paths x factors,
// row-major): same contract and keying as tradecore::risk::philox_normals, equal to the CPU's
// values up to the math libraries' log/sin/cos (a few ulp). Throws std::invalid_argument for
// invalid sizes and tradecore::Error when no device is usable.
void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out);

// Monte-Carlo losses on the GPU into host memory: same contract, Philox stream and formulas as
// tradecore::risk::monte_carlo_losses (equal to the CPU's to ~1e-12 relative: the math
// libraries' exp/erfc differ by a few ulp). Throws std::invalid_argument for invalid inputs and
// tradecore::Error when no device is usable.
void monte_carlo_losses(const risk::McMarket& market, const risk::McInstruments& instruments,
                        const risk::McPositions& positions, const risk::McConfig& config,
                        const risk::McLosses& out);

}  // namespace tradecore::cuda
