// tradecore._core: thin bindings over the C++ core. Conversions, GIL release and exception
// registration only; the Python package holds the public API.
#include <pybind11/pybind11.h>

#include "tradecore/common.hpp"
#include "tradecore/cuda.hpp"

namespace py = pybind11;

namespace tradecore::bindings {
void bind_pricing(py::module_& m);
void bind_surface(py::module_& m);
void bind_book(py::module_& m);
void bind_american(py::module_& m);
void bind_option_type(py::module_& m);
void bind_risk(py::module_& m);
void bind_drift(py::module_& m);
}  // namespace tradecore::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "Tradecore compiled core (C++/CUDA kernels)";
#ifdef TC_VERSION
  m.attr("__version__") = TC_VERSION;
#endif
  // register_exception also installs the translator (tradecore::Error -> _core.Error).
  py::register_exception<tradecore::Error>(m, "Error", PyExc_RuntimeError);
  m.def("cuda_available", &tradecore::cuda::available,
        "True when CUDA kernels are built in and a usable device is present.");
  m.def("cuda_compiled", &tradecore::cuda::compiled, "True when CUDA kernels are built in.");
  m.def("cuda_describe", &tradecore::cuda::describe, "The device, or why there is none.");
  tradecore::bindings::bind_pricing(m);
  tradecore::bindings::bind_surface(m);
  tradecore::bindings::bind_book(m);
  tradecore::bindings::bind_american(m);
  tradecore::bindings::bind_option_type(m);
  tradecore::bindings::bind_risk(m);
  tradecore::bindings::bind_drift(m);
}
