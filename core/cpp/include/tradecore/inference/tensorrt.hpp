// A serialized TensorRT 10 engine (a "plan") run on one GPU: IRuntime -> deserializeCudaEngine
// -> IExecutionContext, one device buffer per I/O tensor sized for the optimization profile's
// largest shapes, input shapes set per call within profile 0, enqueueV3 on the engine's own
// CUDA stream. Built only where TensorRT and CUDA are found (CMake option TC_TENSORRT).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tradecore::inference {

// One I/O tensor of the engine. `datatype` is the Open Inference Protocol name (FP32, FP16,
// INT8, INT32, INT64, UINT8, BOOL); `shape` has -1 where the dimension is dynamic, and
// `min_shape`/`max_shape` are profile 0's range for an input (the shape itself for an output).
struct TensorInfo {
  std::string name;
  bool is_input = false;
  std::string datatype;
  std::size_t element_size = 0;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> min_shape;
  std::vector<std::int64_t> max_shape;
};

class TensorRTEngine {
 public:
  // Deserializes `plan` on CUDA device `device`. Throws std::invalid_argument for a plan
  // TensorRT cannot read or an I/O tensor this engine cannot serve (a datatype without a
  // numpy equivalent, a non-linear format, a shape tensor, a tensor on the host), and
  // tradecore::Error for CUDA failures (no such device, out of memory).
  TensorRTEngine(const void* plan, std::size_t size, int device);
  ~TensorRTEngine();
  TensorRTEngine(const TensorRTEngine&) = delete;
  TensorRTEngine& operator=(const TensorRTEngine&) = delete;

  // Every I/O tensor, in the engine's order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The largest batch profile 0 takes when every input's first dimension is dynamic, else 0.
  std::int64_t max_batch() const { return max_batch_; }

  // Sets the inputs' shapes (one per input, in the order of tensors()' inputs) and returns
  // the outputs' shapes. std::invalid_argument naming the tensor and dimension for a shape
  // outside the declared one or profile 0's range. Not thread-safe: one caller at a time
  // through shape() and run().
  std::vector<std::vector<std::int64_t>> shape(
      const std::vector<std::vector<std::int64_t>>& inputs);
  // Copies the inputs (host, C-contiguous, the shapes last given to shape()) to the device,
  // runs the engine and copies the outputs into `outputs` (host buffers of the shapes shape()
  // returned). Blocks until the stream is done. tradecore::Error on a CUDA or TensorRT failure.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<TensorInfo> tensors_;
  std::int64_t max_batch_ = 0;
};

}  // namespace tradecore::inference
