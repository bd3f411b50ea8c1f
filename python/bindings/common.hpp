#pragma once
// Conversions shared by the bind_<area>.cpp files: numpy arrays to strided core views.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

#include "tradecore/common.hpp"

namespace tradecore::bindings {

namespace py = pybind11;

// A 1-D numpy array of T (any element stride, including 0 from broadcasting) as an In<T>.
template <class T>
In<T> view(const py::array& a, const char* name, py::ssize_t n) {
  if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1)
    throw std::invalid_argument(std::string(name) + ": expected a 1-D array of " +
                                py::str(py::dtype::of<T>()).cast<std::string>());
  if (a.shape(0) != n)
    throw std::invalid_argument(std::string(name) + ": length " + std::to_string(a.shape(0)) +
                                " does not match " + std::to_string(n));
  if (a.strides(0) % static_cast<py::ssize_t>(sizeof(T)) != 0)
    throw std::invalid_argument(std::string(name) + ": misaligned stride");
  return In<T>{static_cast<const T*>(a.data()), a.strides(0) / static_cast<py::ssize_t>(sizeof(T))};
}

// Releases the GIL for the kernel of a batch of at least kReleaseGilRows rows (until the end of
// the enclosing scope) and keeps it for a smaller one. These kernels take well under a
// microsecond a row, so a small batch finishes sooner than a hand-over of the GIL: when another
// thread is waiting for it (grpc.aio's completion-queue poller, a CPU pool thread), releasing
// lets that thread run first and the caller waits to get it back - about 90 us measured on a
// service's event loop for one row (docs/benchmarks.md, pricing latency).
inline constexpr std::size_t kReleaseGilRows = 64;

class ReleaseGilFor {
 public:
  explicit ReleaseGilFor(std::size_t rows) {
    if (rows >= kReleaseGilRows) release_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> release_;
};

}  // namespace tradecore::bindings
