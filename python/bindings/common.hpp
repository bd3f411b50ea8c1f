#pragma once
// Conversions shared by the bind_<area>.cpp files: numpy arrays to strided core views.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

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

}  // namespace tradecore::bindings
