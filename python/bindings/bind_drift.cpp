// Drift-detection kernels (tradecore/drift/drift.hpp): columns as lists of 1-D float64/float32
// arrays (views into a 2-D array need no copy), the GIL released around every kernel.
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "tradecore/drift/drift.hpp"

namespace tradecore::bindings {
namespace {

using Sorted = py::array_t<double, py::array::c_style | py::array::forcecast>;

// The columns of `arrays`: each 1-D, float64 or float32, all of one length.
drift::Columns columns_of(const std::vector<py::array>& arrays, const char* name) {
  drift::Columns c;
  if (arrays.empty()) throw std::invalid_argument(std::string(name) + ": no columns");
  c.rows = static_cast<std::size_t>(arrays[0].ndim() == 1 ? arrays[0].shape(0) : 0);
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    const py::array& a = arrays[i];
    const std::string at = std::string(name) + "[" + std::to_string(i) + "]";
    const bool f64 = py::isinstance<py::array_t<double>>(a);
    const bool f32 = py::isinstance<py::array_t<float>>(a);
    if (a.ndim() != 1 || !(f64 || f32))
      throw std::invalid_argument(at + ": expected a 1-D float64 or float32 array");
    if (static_cast<std::size_t>(a.shape(0)) != c.rows)
      throw std::invalid_argument(at + ": length " + std::to_string(a.shape(0)) +
                                  " differs from the first column's " + std::to_string(c.rows));
    const auto size = static_cast<py::ssize_t>(f32 ? sizeof(float) : sizeof(double));
    if (a.strides(0) % size != 0) throw std::invalid_argument(at + ": misaligned stride");
    c.base.push_back(a.data());
    c.stride.push_back(a.strides(0) / size);
    c.is_f32.push_back(f32 ? 1 : 0);
  }
  return c;
}

py::array_t<std::int64_t> vector_array(const std::vector<std::int64_t>& v) {
  py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_drift(py::module_& m) {
  m.def(
      "drift_sort_columns",
      [](const std::vector<py::array>& columns, int threads) {
        const drift::Columns x = columns_of(columns, "columns");
        py::array_t<double> out(
            {static_cast<py::ssize_t>(x.count()), static_cast<py::ssize_t>(x.rows)});
        std::vector<std::int64_t> bad(x.count(), -1);
        {
          const py::gil_scoped_release release;
          drift::sort_columns(x, out.mutable_data(), bad.data(), threads);
        }
        return py::make_tuple(out, vector_array(bad));
      },
      py::arg("columns"), py::arg("threads") = 0,
      "Each column sorted: (sorted (columns x rows) float64, bad_row int64 per column: the "
      "first row holding NaN or an infinity, else -1).");

  m.def(
      "drift_bin_counts",
      [](const Sorted& sorted, const Sorted& edges, int threads) {
        if (sorted.ndim() != 2 || edges.ndim() != 2 || edges.shape(0) != sorted.shape(0))
          throw std::invalid_argument("sorted (cols x rows) and edges (cols x n) must be 2-D");
        const auto cols = static_cast<std::size_t>(sorted.shape(0));
        const auto rows = static_cast<std::size_t>(sorted.shape(1));
        const auto ne = static_cast<std::size_t>(edges.shape(1));
        py::array_t<std::int64_t> counts(
            {static_cast<py::ssize_t>(cols), static_cast<py::ssize_t>(ne + 1)});
        {
          const py::gil_scoped_release release;
          drift::bin_counts_sorted(sorted.data(), rows, cols, edges.data(), ne,
                                   counts.mutable_data(), threads);
        }
        return counts;
      },
      py::arg("sorted"), py::arg("edges"), py::arg("threads") = 0,
      "Bin counts (cols x (n_edges + 1)) of sorted columns; bin k holds edges[k-1] <= v < "
      "edges[k].");

  m.def(
      "drift_compare",
      [](const std::vector<py::array>& columns, const Sorted& ref_sorted, const Sorted& edges,
         int threads) {
        const drift::Columns x = columns_of(columns, "columns");
        const auto cols = x.count();
        if (ref_sorted.ndim() != 2 || static_cast<std::size_t>(ref_sorted.shape(0)) != cols)
          throw std::invalid_argument("ref_sorted: expected (columns x reference rows)");
        if (edges.ndim() != 2 || static_cast<std::size_t>(edges.shape(0)) != cols)
          throw std::invalid_argument("edges: expected (columns x n_edges)");
        const auto ne = static_cast<std::size_t>(edges.shape(1));
        const auto cn = static_cast<py::ssize_t>(cols);
        py::array_t<double> ks(cn), w1(cn);
        py::array_t<std::int64_t> counts({cn, static_cast<py::ssize_t>(ne + 1)});
        std::vector<std::int64_t> bad(cols, -1);
        {
          const py::gil_scoped_release release;
          drift::compare_columns(
              x, ref_sorted.data(), static_cast<std::size_t>(ref_sorted.shape(1)), edges.data(), ne,
              ks.mutable_data(), w1.mutable_data(), counts.mutable_data(), bad.data(), threads);
        }
        return py::make_tuple(ks, w1, counts, vector_array(bad));
      },
      py::arg("columns"), py::arg("ref_sorted"), py::arg("edges"), py::arg("threads") = 0,
      "One window against the sorted reference: (ks, wasserstein, bin counts, bad_row) per "
      "column.");

  m.def(
      "drift_mmd_linear",
      [](const std::vector<py::array>& x, const std::vector<py::array>& y, const Sorted& center,
         const Sorted& inv_scale, double gamma, std::size_t pairs, int threads) {
        const drift::Columns cx = columns_of(x, "x"), cy = columns_of(y, "y");
        if (static_cast<std::size_t>(center.size()) != cx.count() ||
            static_cast<std::size_t>(inv_scale.size()) != cx.count())
          throw std::invalid_argument("center and inv_scale: one value per column");
        if (!(gamma > 0.0) || !std::isfinite(gamma))
          throw std::invalid_argument("gamma: must be a positive finite number");
        drift::MmdLinear r;
        {
          const py::gil_scoped_release release;
          r = drift::mmd_linear(cx, cy, center.data(), inv_scale.data(), gamma, pairs, threads);
        }
        return py::make_tuple(r.mean, r.variance, r.pairs, r.bad_row, r.bad_col);
      },
      py::arg("x"), py::arg("y"), py::arg("center"), py::arg("inv_scale"), py::arg("gamma"),
      py::arg("pairs"), py::arg("threads") = 0,
      "Linear-time MMD^2 of x and y: (mean of h, variance of h, pairs, bad_row, bad_col of y).");

  m.def(
      "drift_ks_wasserstein_sorted",
      [](const Sorted& u, const Sorted& v) {
        double ks = 0.0, w1 = 0.0;
        drift::ks_wasserstein_sorted(u.data(), static_cast<std::size_t>(u.size()), v.data(),
                                     static_cast<std::size_t>(v.size()), &ks, &w1);
        return py::make_tuple(ks, w1);
      },
      py::arg("u"), py::arg("v"), "KS statistic and Wasserstein-1 distance of two sorted samples.");
}

}  // namespace tradecore::bindings
