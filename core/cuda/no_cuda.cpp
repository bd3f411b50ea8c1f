// Built when no CUDA compiler is available: the same API, reporting that there is no GPU.
#include "tradecore/cuda.hpp"

namespace tradecore::cuda {

bool available() noexcept { return false; }
bool compiled() noexcept { return false; }
std::string describe() { return "built without CUDA (no nvcc found or TC_CUDA=OFF)"; }

void european(const pricing::EuropeanBatch&, const pricing::EuropeanOut&) {
  throw Error("CUDA is not available: this build has no CUDA kernels");
}

pricing::ImpliedVolCounts implied_vol(const pricing::ImpliedVolBatch&, double*, std::int8_t*) {
  throw Error("CUDA is not available: this build has no CUDA kernels");
}

void philox_normals(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, double*) {
  throw Error("CUDA is not available: this build has no CUDA kernels");
}

void monte_carlo_losses(const risk::McMarket&, const risk::McInstruments&, const risk::McPositions&,
                        const risk::McConfig&, const risk::McLosses&) {
  throw Error("CUDA is not available: this build has no CUDA kernels");
}

}  // namespace tradecore::cuda
