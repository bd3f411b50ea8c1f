// Drift-detection kernels (tradecore/drift/drift.hpp). Columns are handled in groups of
// kGroup: a group is gathered in one pass over the rows (for a row-major matrix the group's
// values share cache lines), each column then sorted by an LSD radix sort on order-preserving
// 64-bit keys, and compared with the sorted reference in one merge walk. OpenMP hands groups
// to threads; every thread keeps its buffers across groups.
#include "tradecore/drift/drift.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "../threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tradecore::drift {
namespace {

constexpr std::size_t kGroup = 8;  // 8 doubles: a whole cache line of a row-major matrix
constexpr std::size_t kPrefetchRows = 16;
constexpr int kDigitBits = 11;
constexpr int kPasses = 6;  // 6 x 11 bits cover the 64-bit key
constexpr std::size_t kBuckets = std::size_t{1} << kDigitBits;
constexpr std::uint64_t kSign = std::uint64_t{1} << 63;

// Unsigned keys in the order of the doubles: positives get the sign bit set, negatives are
// complemented.
inline std::uint64_t key_of(double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return (u & kSign) ? ~u : (u | kSign);
}

inline double double_of(std::uint64_t k) {
  const std::uint64_t u = (k & kSign) ? (k & ~kSign) : ~k;
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

// Sorts keys[0, n) (n < 2^32) using scratch[0, n); passes whose digit is the same for every
// key are skipped (all six histograms come from one read).
void radix_sort(std::uint64_t* keys, std::uint64_t* scratch, std::size_t n) {
  std::array<std::array<std::uint32_t, kBuckets>, kPasses> hist{};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t k = keys[i];
    for (int p = 0; p < kPasses; ++p) ++hist[p][(k >> (p * kDigitBits)) & (kBuckets - 1)];
  }
  std::uint64_t* src = keys;
  std::uint64_t* dst = scratch;
  for (int p = 0; p < kPasses; ++p) {
    auto& h = hist[p];
    const int shift = p * kDigitBits;
    if (h[(src[0] >> shift) & (kBuckets - 1)] == n) continue;  // one digit value: no reorder
    std::uint32_t sum = 0;
    for (auto& c : h) {
      const std::uint32_t t = c;
      c = sum;
      sum += t;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t k = src[i];
      dst[h[(k >> shift) & (kBuckets - 1)]++] = k;
    }
    std::swap(src, dst);
  }
  if (src != keys) std::memcpy(keys, src, n * sizeof(std::uint64_t));
}

// Gathers the columns [first, first + g) of x as keys into keys[j * rows + r]; bad[j] gets the
// first non-finite row of each (or stays -1).
void gather_keys(const Columns& x, std::size_t first, std::size_t g, std::uint64_t* keys,
                 std::int64_t* bad) {
  const std::size_t n = x.rows;
  for (std::size_t j = 0; j < g; ++j) bad[j] = -1;
  for (std::size_t r = 0; r < n; ++r) {
    // The rows of a row-major matrix are far apart: fetch ahead, as the hardware prefetcher
    // stops at page boundaries.
    if (r + kPrefetchRows < n) {
      const std::ptrdiff_t ahead = static_cast<std::ptrdiff_t>(r + kPrefetchRows);
      for (std::size_t j = 0; j < g; j += 4) {
        const std::size_t c = first + j;
        const char* p =
            static_cast<const char*>(x.base[c]) + ahead * x.stride[c] * (x.is_f32[c] ? 4 : 8);
        __builtin_prefetch(p);
      }
    }
    for (std::size_t j = 0; j < g; ++j) {
      // + 0.0 turns -0.0 into 0.0, so equal values get equal keys.
      const double v = x.at(first + j, r) + 0.0;
      if (!std::isfinite(v) && bad[j] < 0) bad[j] = static_cast<std::int64_t>(r);
      keys[j * n + r] = key_of(v);
    }
  }
}

// Sorts one gathered column in place and turns the keys back into doubles.
double* sort_keys_to_doubles(std::uint64_t* keys, std::uint64_t* scratch, std::size_t n) {
  if (n > 1) radix_sort(keys, scratch, n);
  double* out = reinterpret_cast<double*>(keys);
  for (std::size_t i = 0; i < n; ++i) out[i] = double_of(keys[i]);
  return out;
}

void bin_counts_one(const double* v, std::size_t n, const double* edges, std::size_t n_edges,
                    std::int64_t* counts) {
  std::size_t below_prev = 0;
  for (std::size_t k = 0; k < n_edges; ++k) {
    const std::size_t below = static_cast<std::size_t>(std::lower_bound(v, v + n, edges[k]) - v);
    counts[k] = static_cast<std::int64_t>(below - below_prev);
    below_prev = below;
  }
  counts[n_edges] = static_cast<std::int64_t>(n - below_prev);
}

template <class Body>
void for_groups(std::size_t cols, std::size_t rows, int threads, Body body) {
  if (rows >= (std::size_t{1} << 32)) throw std::invalid_argument("rows: must be below 2^32");
  const auto groups = static_cast<std::int64_t>((cols + kGroup - 1) / kGroup);
#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel num_threads(nt)
#else
  (void)threads;
#endif
  {
    std::vector<std::uint64_t> keys(kGroup * rows), scratch(rows);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const std::size_t first = static_cast<std::size_t>(gi) * kGroup;
      const std::size_t g = std::min(kGroup, cols - first);
      body(first, g, keys.data(), scratch.data());
    }
  }
}

}  // namespace

void ks_wasserstein_sorted(const double* u, std::size_t m, const double* v, std::size_t n,
                           double* ks, double* w1) {
  if (m == 0 || n == 0) throw std::invalid_argument("ks_wasserstein_sorted: empty sample");
  const double dm = static_cast<double>(m), dn = static_cast<double>(n);
  std::size_t i = 0, j = 0;
  double d = 0.0, w = 0.0, fu = 0.0, fv = 0.0;
  double prev = std::min(u[0], v[0]);
  // One element of the merged order per step, chosen without a branch (u first on a tie): the
  // ECDFs are constant between consecutive values, so the Wasserstein integral adds
  // |F_u - F_v| times each gap (zero inside a run of equal values), and the KS supremum is
  // taken only where the next value differs (after a whole run of equal values: both ECDFs
  // are right-continuous).
  while (i < m && j < n) {
    const double a = u[i], b = v[j];
    const bool take_u = a <= b;
    const double x = take_u ? a : b;
    w += std::fabs(fu - fv) * (x - prev);
    prev = x;
    i += take_u;
    j += !take_u;
    fu = static_cast<double>(i) / dm;
    fv = static_cast<double>(j) / dn;
    const double next_u = i < m ? u[i] : HUGE_VAL;
    const double next_v = j < n ? v[j] : HUGE_VAL;
    const double diff = std::fabs(fu - fv);
    d = (std::min(next_u, next_v) != x && diff > d) ? diff : d;
  }
  // One sample is used up: the other's remaining values in runs.
  while (i < m || j < n) {
    const double x = i < m ? u[i] : v[j];
    w += std::fabs(fu - fv) * (x - prev);
    prev = x;
    while (i < m && u[i] == x) ++i;
    while (j < n && v[j] == x) ++j;
    fu = static_cast<double>(i) / dm;
    fv = static_cast<double>(j) / dn;
    d = std::max(d, std::fabs(fu - fv));
  }
  *ks = d;
  *w1 = w;
}

void sort_columns(const Columns& x, double* out, std::int64_t* bad_row, int threads) {
  const std::size_t n = x.rows;
  for_groups(x.count(), n, threads,
             [&](std::size_t first, std::size_t g, std::uint64_t* keys, std::uint64_t* scratch) {
               gather_keys(x, first, g, keys, bad_row + first);
               for (std::size_t j = 0; j < g; ++j) {
                 if (bad_row[first + j] >= 0) continue;
                 const double* s = sort_keys_to_doubles(keys + j * n, scratch, n);
                 std::memcpy(out + (first + j) * n, s, n * sizeof(double));
               }
             });
}

void bin_counts_sorted(const double* sorted, std::size_t rows, std::size_t cols,
                       const double* edges, std::size_t n_edges, std::int64_t* counts,
                       int threads) {
  const auto nc = static_cast<std::int64_t>(cols);
#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static)
#else
  (void)threads;
#endif
  for (std::int64_t c = 0; c < nc; ++c) {
    const auto cu = static_cast<std::size_t>(c);
    bin_counts_one(sorted + cu * rows, rows, edges + cu * n_edges, n_edges,
                   counts + cu * (n_edges + 1));
  }
}

void compare_columns(const Columns& x, const double* ref_sorted, std::size_t ref_rows,
                     const double* edges, std::size_t n_edges, double* ks, double* w1,
                     std::int64_t* counts, std::int64_t* bad_row, int threads) {
  const std::size_t n = x.rows;
  if (n == 0 || ref_rows == 0) throw std::invalid_argument("compare_columns: empty sample");
  for_groups(x.count(), n, threads,
             [&](std::size_t first, std::size_t g, std::uint64_t* keys, std::uint64_t* scratch) {
               gather_keys(x, first, g, keys, bad_row + first);
               for (std::size_t j = 0; j < g; ++j) {
                 const std::size_t c = first + j;
                 if (bad_row[c] >= 0) continue;
                 const double* s = sort_keys_to_doubles(keys + j * n, scratch, n);
                 ks_wasserstein_sorted(ref_sorted + c * ref_rows, ref_rows, s, n, ks + c, w1 + c);
                 bin_counts_one(s, n, edges + c * n_edges, n_edges, counts + c * (n_edges + 1));
               }
             });
}

MmdLinear mmd_linear(const Columns& x, const Columns& y, const double* center,
                     const double* inv_scale, double gamma, std::size_t pairs, int threads) {
  const std::size_t dims = x.count();
  if (y.count() != dims) throw std::invalid_argument("mmd: x and y differ in columns");
  if (pairs == 0 || 2 * pairs > x.rows || 2 * pairs > y.rows)
    throw std::invalid_argument("mmd: pairs must be in [1, min(rows) / 2]");
  MmdLinear res;
  res.pairs = pairs;
  const std::size_t sample = 2 * pairs;
  // Row k of an evenly spaced sample of `sample` rows out of `rows`.
  auto row_of = [sample](std::size_t k, std::size_t rows) {
    return static_cast<std::size_t>(static_cast<unsigned __int128>(k) * rows / sample);
  };
  double sum = 0.0, sum_sq = 0.0;
  std::int64_t bad_row = -1, bad_col = -1;
  const auto np_ = static_cast<std::int64_t>(pairs);
#ifdef _OPENMP
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel num_threads(nt) reduction(+ : sum, sum_sq)
#else
  (void)threads;
#endif
  {
    std::vector<double> a(dims), b(dims), c(dims), d(dims);
    auto load = [&](const Columns& m, std::size_t r, double* out) {
      for (std::size_t k = 0; k < dims; ++k) out[k] = (m.at(k, r) - center[k]) * inv_scale[k];
    };
    auto kern = [&](const double* p, const double* q) {
      double s = 0.0;
      for (std::size_t k = 0; k < dims; ++k) {
        const double t = p[k] - q[k];
        s += t * t;
      }
      return std::exp(-gamma * s);
    };
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (std::int64_t i = 0; i < np_; ++i) {
      const auto k = static_cast<std::size_t>(i) * 2;
      load(x, row_of(k, x.rows), a.data());
      load(x, row_of(k + 1, x.rows), b.data());
      const std::size_t y0 = row_of(k, y.rows), y1 = row_of(k + 1, y.rows);
      load(y, y0, c.data());
      load(y, y1, d.data());
      const double h = kern(a.data(), b.data()) + kern(c.data(), d.data()) -
                       kern(a.data(), d.data()) - kern(b.data(), c.data());
      if (!std::isfinite(h)) {
        for (std::size_t col = 0; col < dims; ++col) {
          for (std::size_t r : {y0, y1}) {
            if (!std::isfinite(y.at(col, r))) {
#ifdef _OPENMP
#pragma omp critical(tc_mmd_bad)
#endif
              {
                if (bad_row < 0 || static_cast<std::int64_t>(r) < bad_row) {
                  bad_row = static_cast<std::int64_t>(r);
                  bad_col = static_cast<std::int64_t>(col);
                }
              }
            }
          }
        }
        continue;
      }
      sum += h;
      sum_sq += h * h;
    }
  }
  res.bad_row = bad_row;
  res.bad_col = bad_col;
  const double np_d = static_cast<double>(pairs);
  res.mean = sum / np_d;
  res.variance =
      pairs > 1 ? std::max(0.0, (sum_sq - np_d * res.mean * res.mean) / (np_d - 1.0)) : 0.0;
  return res;
}

}  // namespace tradecore::drift
