// TensorRT engine (see tradecore/inference/tensorrt.hpp). Uses the TensorRT 10 I/O-tensor API
// (getNbIOTensors/getIOTensorName, setInputShape, setTensorAddress, enqueueV3); the objects are
// released with delete, as TensorRT 10 requires.
#include "tradecore/inference/tensorrt.hpp"

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "tradecore/common.hpp"

namespace tradecore::inference {

namespace {

// Keeps TensorRT's last error message for the exception that follows a failed call; warnings
// and information are dropped (the caller reports failures through exceptions).
class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity > Severity::kERROR || msg == nullptr) return;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      last_ = msg;
    } catch (...) {
      // log() must not throw; a message lost to an allocation failure is acceptable.
    }
  }
  std::string last() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_.empty() ? std::string("no message from TensorRT") : last_;
  }

 private:
  mutable std::mutex mutex_;
  std::string last_;
};

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw Error(std::string("TensorRT engine: ") + what + ": " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
  }
}

// The OIP datatype name and element size, or empty for a datatype numpy has no equivalent of.
std::pair<std::string, std::size_t> datatype(nvinfer1::DataType t) {
  using nvinfer1::DataType;
  switch (t) {
    case DataType::kFLOAT:
      return {"FP32", 4};
    case DataType::kHALF:
      return {"FP16", 2};
    case DataType::kINT8:
      return {"INT8", 1};
    case DataType::kINT32:
      return {"INT32", 4};
    case DataType::kINT64:
      return {"INT64", 8};
    case DataType::kUINT8:
      return {"UINT8", 1};
    case DataType::kBOOL:
      return {"BOOL", 1};
    default:  // kFP8, kBF16, kINT4 and later sub-byte or exotic types
      return {"", 0};
  }
}

std::vector<std::int64_t> dims(const nvinfer1::Dims& d) {
  return std::vector<std::int64_t>(d.d, d.d + std::max(d.nbDims, 0));
}

std::string text(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::size_t elements(const std::vector<std::int64_t>& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(std::max<std::int64_t>(d, 0));
  return n;
}

}  // namespace

struct TensorRTEngine::Impl {
  int device = 0;
  Logger logger;
  std::unique_ptr<nvinfer1::IRuntime> runtime;
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::unique_ptr<nvinfer1::IExecutionContext> context;
  cudaStream_t stream = nullptr;
  std::vector<void*> buffers;                // one device buffer per I/O tensor
  std::vector<std::size_t> bytes;            // the current shape's size of each I/O tensor
  std::vector<std::size_t> capacity;         // each buffer's size
  std::vector<std::size_t> inputs, outputs;  // indices into tensors()

  ~Impl() {
    // The context goes before the engine, the engine before the runtime (member order of
    // destruction does this for the unique_ptrs); the buffers and stream after the context.
    context.reset();
    engine.reset();
    runtime.reset();
    if (device >= 0) cudaSetDevice(device);
    for (void* p : buffers) {
      if (p) cudaFree(p);
    }
    if (stream) cudaStreamDestroy(stream);
  }
};

TensorRTEngine::TensorRTEngine(const void* plan, std::size_t size, int device)
    : impl_(std::make_unique<Impl>()) {
  if (plan == nullptr || size == 0) throw std::invalid_argument("plan: empty");
  if (device < 0) throw std::invalid_argument("device: at least 0");
  impl_->device = -1;  // nothing to release on this device until it is set
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device >= count) {
    throw Error("TensorRT engine: no CUDA device " + std::to_string(device) + " (" +
                std::to_string(count) + " present)");
  }
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  impl_->device = device;
  check_cuda(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreate");

  impl_->runtime.reset(nvinfer1::createInferRuntime(impl_->logger));
  if (!impl_->runtime) throw Error("TensorRT: createInferRuntime failed: " + impl_->logger.last());
  impl_->engine.reset(impl_->runtime->deserializeCudaEngine(plan, size));
  if (!impl_->engine) {
    throw std::invalid_argument("plan: TensorRT cannot deserialize it (" + impl_->logger.last() +
                                ")");
  }
  nvinfer1::ICudaEngine& engine = *impl_->engine;
  if (engine.getNbOptimizationProfiles() < 1) {
    throw std::invalid_argument("plan: no optimization profile");
  }

  const int n = engine.getNbIOTensors();
  bool batches = true;
  bool any_input = false;
  std::int64_t max_batch = -1;
  for (int i = 0; i < n; ++i) {
    const char* name = engine.getIOTensorName(i);
    TensorInfo t;
    t.name = name;
    t.is_input = engine.getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT;
    auto [dt, width] = datatype(engine.getTensorDataType(name));
    if (dt.empty()) {
      throw std::invalid_argument("tensor '" + t.name +
                                  "': its TensorRT datatype has no numpy equivalent");
    }
    if (engine.isShapeInferenceIO(name)) {
      throw std::invalid_argument("tensor '" + t.name + "': shape tensors are not supported");
    }
    if (engine.getTensorLocation(name) != nvinfer1::TensorLocation::kDEVICE) {
      throw std::invalid_argument("tensor '" + t.name + "': not on the device");
    }
    if (engine.getTensorFormat(name) != nvinfer1::TensorFormat::kLINEAR) {
      throw std::invalid_argument("tensor '" + t.name + "': only the linear format is supported");
    }
    t.datatype = dt;
    t.element_size = width;
    t.shape = dims(engine.getTensorShape(name));
    if (t.is_input) {
      any_input = true;
      t.min_shape = dims(engine.getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMIN));
      t.max_shape = dims(engine.getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMAX));
      if (t.min_shape.size() != t.shape.size()) t.min_shape = t.shape;
      if (t.max_shape.size() != t.shape.size()) t.max_shape = t.shape;
      if (t.shape.empty() || t.shape[0] != -1) {
        batches = false;
      } else {
        max_batch = max_batch < 0 ? t.max_shape[0] : std::min(max_batch, t.max_shape[0]);
      }
      impl_->inputs.push_back(tensors_.size());
    } else {
      t.min_shape = t.shape;
      t.max_shape = t.shape;
      impl_->outputs.push_back(tensors_.size());
    }
    tensors_.push_back(std::move(t));
  }
  max_batch_ = batches && any_input ? std::max<std::int64_t>(max_batch, 0) : 0;

  impl_->context.reset(engine.createExecutionContext());
  if (!impl_->context) {
    throw Error("TensorRT: createExecutionContext failed: " + impl_->logger.last());
  }
  if (!impl_->context->setOptimizationProfileAsync(0, impl_->stream)) {
    throw Error("TensorRT: setOptimizationProfileAsync(0) failed: " + impl_->logger.last());
  }

  // Size every buffer for profile 0's largest input shapes, and the outputs those imply.
  std::vector<std::vector<std::int64_t>> largest;
  for (auto i : impl_->inputs) largest.push_back(tensors_[i].max_shape);
  auto out_shapes = shape(largest);
  for (std::size_t k = 0; k < impl_->outputs.size(); ++k) {
    tensors_[impl_->outputs[k]].max_shape = out_shapes[k];
  }
  impl_->buffers.assign(tensors_.size(), nullptr);
  impl_->capacity.assign(tensors_.size(), 0);
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const std::size_t need = std::max<std::size_t>(impl_->bytes[i], 1);
    check_cuda(cudaMalloc(&impl_->buffers[i], need), "cudaMalloc");
    impl_->capacity[i] = need;
    if (!impl_->context->setTensorAddress(tensors_[i].name.c_str(), impl_->buffers[i])) {
      throw Error("TensorRT: setTensorAddress('" + tensors_[i].name +
                  "') failed: " + impl_->logger.last());
    }
  }
}

TensorRTEngine::~TensorRTEngine() = default;

std::vector<std::vector<std::int64_t>> TensorRTEngine::shape(
    const std::vector<std::vector<std::int64_t>>& inputs) {
  if (inputs.size() != impl_->inputs.size()) {
    throw std::invalid_argument("inputs: " + std::to_string(impl_->inputs.size()) +
                                " tensors expected, got " + std::to_string(inputs.size()));
  }
  impl_->bytes.assign(tensors_.size(), 0);
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const TensorInfo& t = tensors_[impl_->inputs[k]];
    const auto& s = inputs[k];
    if (s.size() != t.shape.size()) {
      throw std::invalid_argument("input tensor '" + t.name + "': shape " + text(s) +
                                  ", the model expects " + text(t.shape));
    }
    nvinfer1::Dims d{};
    d.nbDims = static_cast<std::int32_t>(s.size());
    for (std::size_t j = 0; j < s.size(); ++j) {
      if ((t.shape[j] != -1 && s[j] != t.shape[j]) || s[j] < t.min_shape[j] ||
          s[j] > t.max_shape[j]) {
        throw std::invalid_argument("input tensor '" + t.name + "': shape " + text(s) +
                                    ", the engine's profile takes " + text(t.min_shape) + " to " +
                                    text(t.max_shape) + " (dimension " + std::to_string(j) + ")");
      }
      d.d[j] = s[j];
    }
    if (!impl_->context->setInputShape(t.name.c_str(), d)) {
      throw std::invalid_argument("input tensor '" + t.name + "': TensorRT refused shape " +
                                  text(s) + " (" + impl_->logger.last() + ")");
    }
    impl_->bytes[impl_->inputs[k]] = elements(s) * t.element_size;
  }
  std::vector<std::vector<std::int64_t>> out;
  for (auto i : impl_->outputs) {
    const TensorInfo& t = tensors_[i];
    auto s = dims(impl_->context->getTensorShape(t.name.c_str()));
    if (std::any_of(s.begin(), s.end(), [](std::int64_t v) { return v < 0; })) {
      // A data-dependent output shape would need an IOutputAllocator.
      throw Error("TensorRT: output tensor '" + t.name + "' has data-dependent shape " + text(s) +
                  ", which this engine does not support");
    }
    impl_->bytes[i] = elements(s) * t.element_size;
    out.push_back(std::move(s));
  }
  return out;
}

void TensorRTEngine::run(const std::vector<const void*>& inputs,
                         const std::vector<void*>& outputs) {
  if (inputs.size() != impl_->inputs.size() || outputs.size() != impl_->outputs.size()) {
    throw std::invalid_argument("run: one host buffer per input and per output");
  }
  check_cuda(cudaSetDevice(impl_->device), "cudaSetDevice");
  cudaStream_t stream = impl_->stream;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const std::size_t i = impl_->inputs[k];
    if (impl_->bytes[i] > impl_->capacity[i]) throw Error("TensorRT: input larger than its buffer");
    if (impl_->bytes[i]) {
      check_cuda(cudaMemcpyAsync(impl_->buffers[i], inputs[k], impl_->bytes[i],
                                 cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync (input)");
    }
  }
  if (!impl_->context->enqueueV3(stream)) {
    cudaStreamSynchronize(stream);
    throw Error("TensorRT: enqueueV3 failed: " + impl_->logger.last());
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const std::size_t i = impl_->outputs[k];
    if (impl_->bytes[i] > impl_->capacity[i]) {
      cudaStreamSynchronize(stream);
      throw Error("TensorRT: output larger than its buffer");
    }
    if (impl_->bytes[i]) {
      check_cuda(cudaMemcpyAsync(outputs[k], impl_->buffers[i], impl_->bytes[i],
                                 cudaMemcpyDeviceToHost, stream),
                 "cudaMemcpyAsync (output)");
    }
  }
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

}  // namespace tradecore::inference
