#pragma once
// Drift-detection kernels: per-column sort, two-sample Kolmogorov-Smirnov and Wasserstein-1
// statistics against a pre-sorted reference, histograms on fixed bin edges, and the
// linear-time MMD statistic with an RBF kernel. The reference is prepared once (sorted columns,
// bin edges) so that a window costs only its own work.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tradecore::drift {

// Columns of equal length, each a strided view (stride in elements) of float64 or float32
// data: the columns of a 2-D array in any memory order, or separate 1-D arrays.
struct Columns {
  std::size_t rows = 0;
  std::vector<const void*> base;
  std::vector<std::ptrdiff_t> stride;
  std::vector<unsigned char> is_f32;  // 1: float32, 0: float64

  std::size_t count() const { return base.size(); }
  double at(std::size_t c, std::size_t r) const {
    const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(r) * stride[c];
    return is_f32[c] ? static_cast<double>(static_cast<const float*>(base[c])[off])
                     : static_cast<const double*>(base[c])[off];
  }
};

// Each column of x sorted ascending into out (column c at out + c * x.rows; -0.0 becomes 0.0).
// bad_row[c] is the first row of column c holding NaN or an infinity (that column is then left
// unsorted), else -1.
void sort_columns(const Columns& x, double* out, std::int64_t* bad_row, int threads);

// Bin counts of sorted columns: column c (rows values at sorted + c * rows) against its
// n_edges ascending edges (edges + c * n_edges); bin k holds edges[k-1] <= v < edges[k] (the
// first bin everything below edges[0], the last everything from edges[n_edges-1] on), so
// counts (cols x (n_edges + 1)) per column sum to rows.
void bin_counts_sorted(const double* sorted, std::size_t rows, std::size_t cols,
                       const double* edges, std::size_t n_edges, std::int64_t* counts, int threads);

// One window against the prepared reference, per column c of x: the column sorted, then
// ks[c] = sup |F_ref - F_x| (two-sample Kolmogorov-Smirnov statistic), w1[c] = the integral of
// |F_ref - F_x| (Wasserstein-1 distance), counts[c] = bin_counts of the column on the
// reference's edges. ref_sorted holds the sorted reference columns (ref_rows each, column c at
// ref_sorted + c * ref_rows). bad_row as for sort_columns (statistics of such a column are not
// written).
void compare_columns(const Columns& x, const double* ref_sorted, std::size_t ref_rows,
                     const double* edges, std::size_t n_edges, double* ks, double* w1,
                     std::int64_t* counts, std::int64_t* bad_row, int threads);

// The statistic of one sorted pair (exposed for tests): KS and Wasserstein-1 of u and v.
void ks_wasserstein_sorted(const double* u, std::size_t m, const double* v, std::size_t n,
                           double* ks, double* w1);

struct MmdLinear {
  double mean = 0.0;      // the linear-time MMD^2 estimate (mean of h over pairs)
  double variance = 0.0;  // the sample variance of h
  std::size_t pairs = 0;
  std::int64_t bad_row = -1;  // a sampled row of y with a non-finite value (-1: none)
  std::int64_t bad_col = -1;
};

// Gretton et al.'s linear-time MMD^2 between x (reference) and y (window): rows standardized
// by (v - center[c]) * inv_scale[c], k(a, b) = exp(-gamma * |a - b|^2), pairs of consecutive
// rows of an evenly spaced sample of 2 * pairs rows of each (pairs <= min(x, y rows) / 2),
// h_i = k(x_2i, x_2i+1) + k(y_2i, y_2i+1) - k(x_2i, y_2i+1) - k(x_2i+1, y_2i).
MmdLinear mmd_linear(const Columns& x, const Columns& y, const double* center,
                     const double* inv_scale, double gamma, std::size_t pairs, int threads);

}  // namespace tradecore::drift
