#pragma once
// Shared building blocks of the core: strided views over caller-owned arrays and
// the domain error hierarchy. No Python, no I/O, no global mutable state.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tradecore {

// A read-only view of n values; stride 0 broadcasts one value, stride 1 is contiguous.
template <class T>
struct In {
  const T* data = nullptr;
  std::ptrdiff_t stride = 1;  // in elements
  [[nodiscard]] T operator[](std::size_t i) const noexcept {
    return data[static_cast<std::ptrdiff_t>(i) * stride];
  }
};

// Base of domain failures (a model that cannot produce a value). Invalid arguments are
// std::invalid_argument instead.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tradecore
