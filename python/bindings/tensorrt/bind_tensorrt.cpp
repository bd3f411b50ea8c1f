// tradecore._core_trt: the TensorRT engine (core/cpp/src/inference/tensorrt.cpp), built only
// where TensorRT and CUDA are found. Conversions, locking and GIL release only; the Python
// class tradecore.inference.tensorrt.TensorRTEngine holds the API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tradecore/common.hpp"
#include "tradecore/inference/tensorrt.hpp"

namespace py = pybind11;
using tradecore::inference::TensorInfo;
using tradecore::inference::TensorRTEngine;

namespace {

py::dtype numpy_dtype(const std::string& datatype) {
  if (datatype == "FP32") return py::dtype::of<float>();
  if (datatype == "FP16") return py::dtype("float16");
  if (datatype == "INT8") return py::dtype::of<std::int8_t>();
  if (datatype == "INT32") return py::dtype::of<std::int32_t>();
  if (datatype == "INT64") return py::dtype::of<std::int64_t>();
  if (datatype == "UINT8") return py::dtype::of<std::uint8_t>();
  return py::dtype::of<bool>();  // BOOL: the engine admits no other datatype
}

// The engine and the lock that keeps one caller at a time between shape() and run().
class Engine {
 public:
  Engine(py::bytes plan, int device) {
    std::string data = plan;  // a copy: TensorRT reads it during deserialization only
    py::gil_scoped_release release;
    engine_ = std::make_unique<TensorRTEngine>(data.data(), data.size(), device);
  }

  py::list tensors() const {
    py::list out;
    for (const TensorInfo& t : engine_->tensors()) {
      out.append(py::make_tuple(t.name, t.is_input, t.datatype, py::tuple(py::cast(t.shape))));
    }
    return out;
  }

  std::int64_t max_batch() const { return engine_->max_batch(); }

  // inputs: name -> C-contiguous array of the tensor's dtype (validated by the caller; checked
  // again here, cheaply, since a wrong buffer would be read out of bounds).
  py::dict run(const py::dict& inputs) {
    std::vector<py::array> arrays;
    std::vector<std::vector<std::int64_t>> shapes;
    for (const TensorInfo& t : engine_->tensors()) {
      if (!t.is_input) continue;
      if (!inputs.contains(t.name.c_str())) {
        throw std::invalid_argument("input tensor '" + t.name + "': missing");
      }
      py::array a = py::array::ensure(inputs[t.name.c_str()], py::array::c_style);
      if (!a || !a.dtype().equal(numpy_dtype(t.datatype))) {
        throw std::invalid_argument("input tensor '" + t.name + "': expected a C-contiguous " +
                                    t.datatype + " array");
      }
      shapes.emplace_back(a.shape(), a.shape() + a.ndim());
      arrays.push_back(std::move(a));
    }
    std::vector<py::array> outs;
    {
      // Without the GIL while waiting for the lock and the GPU; with it to make the outputs.
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      std::vector<std::vector<std::int64_t>> out_shapes = engine_->shape(shapes);
      std::vector<void*> out_ptrs;
      {
        py::gil_scoped_acquire acquire;
        for (std::size_t k = 0, o = 0; k < engine_->tensors().size(); ++k) {
          const TensorInfo& t = engine_->tensors()[k];
          if (t.is_input) continue;
          outs.emplace_back(numpy_dtype(t.datatype), out_shapes[o++]);
          out_ptrs.push_back(outs.back().mutable_data());
        }
      }
      std::vector<const void*> in_ptrs;
      for (auto& a : arrays) in_ptrs.push_back(a.data());
      engine_->run(in_ptrs, out_ptrs);
    }
    py::dict result;
    for (std::size_t k = 0, o = 0; k < engine_->tensors().size(); ++k) {
      const TensorInfo& t = engine_->tensors()[k];
      if (!t.is_input) result[t.name.c_str()] = outs[o++];
    }
    return result;
  }

 private:
  std::unique_ptr<TensorRTEngine> engine_;
  std::mutex mutex_;
};

}  // namespace

PYBIND11_MODULE(_core_trt, m) {
  m.doc() = "Tradecore TensorRT engine (built where TensorRT and CUDA are found)";
  // tradecore::Error is _core.Error (tradecore.TradecoreError) here too; std::invalid_argument
  // is ValueError by pybind11's own translation. The class lives as long as the interpreter.
  static py::handle error =
      py::object(py::module_::import("tradecore._core").attr("Error")).release();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tradecore::Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });
  py::class_<Engine>(m, "Engine")
      .def(py::init<py::bytes, int>(), py::arg("plan"), py::arg("device") = 0)
      .def("tensors", &Engine::tensors,
           "(name, is_input, OIP datatype, shape with -1 where dynamic) per I/O tensor")
      .def("max_batch", &Engine::max_batch,
           "The largest batch profile 0 takes when every input batches on dimension 0, else 0")
      .def("run", &Engine::run, py::arg("inputs"),
           "Outputs by name for C-contiguous inputs by name");
}
