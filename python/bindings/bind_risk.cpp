// The risk kernels' random stream (tradecore/risk/philox.hpp): the raw Philox block, for the
// known-answer tests, and batches of standard normals.
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "common.hpp"
#include "tradecore/cuda.hpp"
#include "tradecore/risk/normals.hpp"
#include "tradecore/risk/philox.hpp"

namespace tradecore::bindings {

void bind_risk(py::module_& m) {
  m.def(
      "philox4x32_10",
      [](const std::array<std::uint32_t, 4>& counter, const std::array<std::uint32_t, 2>& key) {
        const risk::PhiloxCounter out = risk::philox4x32_10(
            {{counter[0], counter[1], counter[2], counter[3]}}, {{key[0], key[1]}});
        return std::array<std::uint32_t, 4>{out.v[0], out.v[1], out.v[2], out.v[3]};
      },
      py::arg("counter"), py::arg("key"),
      "One Philox 4x32-10 block: four 32-bit counter words and two key words to four words.");

  m.def(
      "philox_normals",
      [](std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths, std::uint64_t factors,
         int threads, bool gpu) {
        risk::validate_normals(first_path, paths, factors);
        py::array_t<double> out(
            {static_cast<py::ssize_t>(paths), static_cast<py::ssize_t>(factors)});
        double* data = out.mutable_data();
        {
          const ReleaseGilFor release(static_cast<std::size_t>(paths * factors));
          if (gpu) {
            cuda::philox_normals(seed, first_path, paths, factors, data);
          } else {
            risk::philox_normals(seed, first_path, paths, factors, data, threads);
          }
        }
        return out;
      },
      py::arg("seed"), py::arg("first_path"), py::arg("paths"), py::arg("factors"),
      py::arg("threads") = 0, py::arg("gpu") = false,
      "Standard normals (paths, factors) float64, row i being path first_path + i, from the "
      "Philox stream keyed by seed, on the CPU (threads 0: the OpenMP default) or the GPU.");
}

}  // namespace tradecore::bindings
