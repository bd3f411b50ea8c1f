#pragma once
// GPU entry points. Every function here has the same signature with and without CUDA:
// core/cuda/*.cu implement them where nvcc is found, core/cuda/no_cuda.cpp otherwise.
#include <string>

#include "tradecore/pricing/european.hpp"

namespace tradecore::cuda {

// True when the library was built with CUDA and a usable device is present. Never throws:
// any runtime error (no driver, insufficient driver, no device) reads as "no GPU".
bool available() noexcept;

// Whether CUDA kernels were compiled into this build.
bool compiled() noexcept;

// A one-line description of the device or of why there is none.
std::string describe();

// European BSM batch on the GPU: same inputs, outputs and conventions as
// tradecore::pricing::bsm_european (validated on the host first). Throws tradecore::Error when
// no device is usable.
void bsm_european(const pricing::EuropeanBatch& in, const pricing::EuropeanOut& out);

}  // namespace tradecore::cuda
