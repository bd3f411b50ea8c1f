#pragma once
// Output columns of large batches from a bounded pool of freed blocks.
//
// A fresh 8 MB column is new pages on every call (glibc returns blocks of that size to the
// OS when they are freed), and first-touch page faults cost more than the pricing itself: on
// the project's VMs ~12 ns/option of a 1M-option European call whose kernel takes ~6 ns
// (docs/benchmarks.md). Columns of at least kMinBytes are therefore carved from blocks that
// return to this pool when their array is freed, so the next call reuses pages that are
// already mapped. At most kMaxKeptBytes of free blocks are kept; the rest go back to the OS.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

namespace tradecore::bindings {

namespace py = pybind11;

class OutputPool {
 public:
  static constexpr std::size_t kMinBytes = std::size_t{1} << 20;
  static constexpr std::size_t kMaxKeptBytes = std::size_t{256} << 20;
  static constexpr std::size_t kAlign = std::size_t{2} << 20;  // a transparent huge page

  static OutputPool& instance() {
    static auto* pool = new OutputPool();  // never destroyed: arrays may outlive static dtors
    return *pool;
  }

  // A block of at least `bytes` (rounded up to kAlign), from the pool when one is free.
  void* take(std::size_t& bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto [first, last] = free_.equal_range(bytes);
      if (first != last) {  // the most recently freed: its pages are likeliest still cached
        auto it = std::prev(last);
        void* p = it->second;
        free_.erase(it);
        kept_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, bytes);
    if (p == nullptr) throw std::bad_alloc();
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint: fewer, larger faults where THP is on
    return p;
  }

  void give(void* p, std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (kept_ + bytes <= kMaxKeptBytes) {
        free_.emplace(bytes, p);
        kept_ += bytes;
        return;
      }
    }
    std::free(p);
  }

  std::size_t kept_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return kept_;
  }

 private:
  std::mutex mu_;
  std::multimap<std::size_t, void*> free_;
  std::size_t kept_ = 0;
};

// A new 1-D float64 array of n elements (contents unset, as np.empty): pooled when large.
inline py::array_t<double> output_array(py::ssize_t n) {
  const std::size_t want = static_cast<std::size_t>(n) * sizeof(double);
  if (want < OutputPool::kMinBytes) return py::array_t<double>(n);
  struct Block {
    void* p;
    std::size_t bytes;
  };
  std::size_t bytes = want;
  void* p = OutputPool::instance().take(bytes);
  auto* block = new Block{p, bytes};
  py::capsule owner(block, [](void* b) {
    auto* blk = static_cast<Block*>(b);
    OutputPool::instance().give(blk->p, blk->bytes);
    delete blk;
  });
  return py::array_t<double>({n}, {static_cast<py::ssize_t>(sizeof(double))},
                             static_cast<double*>(p), owner);
}

}  // namespace tradecore::bindings
