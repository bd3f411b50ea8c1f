// Micro-benchmark of the European and implied-vol kernels, called directly (no Python): the
// harness behind the profile in docs/benchmarks_greeks.md. Single-threaded figures are thread
// CPU time (less sensitive to other processes on a shared machine), multi-threaded ones wall
// time; each is the best of several repetitions.
//   cmake -S . -B build/bench -DTC_BENCH=ON && cmake --build build/bench --target bench_pricing
//   build/bench/bench_pricing [greeks|iv|all]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "tradecore/pricing/european.hpp"
#include "tradecore/pricing/implied_vol.hpp"

using namespace tradecore;
using namespace tradecore::pricing;

namespace {

double wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Best time of `reps` calls of f, in ns per row.
template <class F>
double best_ns(F f, int reps, std::size_t rows, bool cpu_time) {
  double best = 1e300;
  for (int k = 0; k < reps; ++k) {
    const double t0 = cpu_time ? thread_cpu() : wall();
    f();
    best = std::min(best, (cpu_time ? thread_cpu() : wall()) - t0);
  }
  return best / static_cast<double>(rows) * 1e9;
}

template <class T>
In<T> view(const std::vector<T>& v) {
  In<T> c;
  c.data = v.data();
  c.stride = 1;
  return c;
}

// The book of bench/test_bench_greeks.py (same ranges, another generator).
struct Book {
  std::vector<double> S, K, T, r, q, v;
  std::vector<std::int8_t> w;
  explicit Book(std::size_t n) : S(n), K(n), T(n), r(n), q(n), v(n), w(n) {
    std::mt19937_64 g(1);
    std::uniform_real_distribution<double> U(0.0, 1.0);
    for (std::size_t i = 0; i < n; ++i) {
      S[i] = 50 + 100 * U(g);
      K[i] = 50 + 100 * U(g);
      T[i] = 0.05 + 2.95 * U(g);
      r[i] = -0.01 + 0.09 * U(g);
      q[i] = 0.05 * U(g);
      v[i] = 0.05 + 0.75 * U(g);
      w[i] = U(g) < 0.5 ? 1 : -1;
    }
  }
  EuropeanBatch batch(std::size_t n) const {
    EuropeanBatch b;
    b.spot = view(S);
    b.strike = view(K);
    b.expiry = view(T);
    b.rate = view(r);
    b.dividend = view(q);
    b.vol = view(v);
    b.type = view(w);
    b.n = n;
    return b;
  }
};

void greeks(const Book& book, std::size_t n) {
  std::vector<std::vector<double>> o(7, std::vector<double>(n, 0.0));
  EuropeanOut out;
  double** cols[7] = {&out.price, &out.delta, &out.gamma, &out.vega,
                      &out.theta, &out.rho,   &out.phi};
  for (int k = 0; k < 7; ++k) *cols[k] = o[static_cast<std::size_t>(k)].data();
  const EuropeanBatch b = book.batch(n);
  std::printf("price + first-order Greeks, %zu rows, reused outputs\n", n);
  std::printf("  1 thread (CPU time):  %6.2f ns/option\n",
              best_ns([&] { european(b, out, 1); }, 15, n, true));
  std::printf("  2 threads (wall):     %6.2f ns/option\n",
              best_ns([&] { european(b, out, 2); }, 15, n, false));
  const EuropeanBatch small = book.batch(8192);
  std::printf("  8,192 rows in cache, 1 thread: %6.2f ns/option\n", best_ns(
                                                                        [&] {
                                                                          for (int k = 0; k < 100;
                                                                               ++k)
                                                                            european(small, out, 1);
                                                                        },
                                                                        20, 100 * small.n, true));
}

void iv(const Book& book, std::size_t n) {
  std::vector<double> price(n), vol(n), vol1(n);
  std::vector<std::int8_t> st(n);
  EuropeanOut po;
  po.price = price.data();
  european(book.batch(n), po, 0);
  ImpliedVolBatch ib;
  ib.price = view(price);
  ib.spot = view(book.S);
  ib.strike = view(book.K);
  ib.expiry = view(book.T);
  ib.rate = view(book.r);
  ib.dividend = view(book.q);
  ib.type = view(book.w);
  ib.n = n;
  std::printf("implied vol, %zu rows\n", n);
  std::printf("  1 thread (CPU time):  %6.1f ns/option\n",
              best_ns([&] { implied_vol(ib, vol.data(), st.data(), 1); }, 5, n, true));
  std::printf("  2 threads (wall):     %6.1f ns/option\n",
              best_ns([&] { implied_vol(ib, vol.data(), st.data(), 2); }, 5, n, false));
  // The block solver against the scalar solver, row by row.
  double worst = 0.0;
  std::size_t mismatched = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int8_t s1 = implied_vol_scalar(price[i], book.S[i], book.K[i], book.T[i], book.r[i],
                                              book.q[i], book.w[i], Model::Bsm, vol1[i]);
    if (s1 != st[i]) ++mismatched;
    if (s1 == kIvOk && st[i] == kIvOk && price[i] > 1e-290)
      worst = std::max(worst, std::fabs(vol[i] - vol1[i]) / vol1[i]);
  }
  std::printf("  vs the scalar solver: %zu status mismatches, vols within %.2g relative\n",
              mismatched, worst);
  // Per region of the normalised Black function (h = x/s, x reduced to <= 0).
  const char* names[3] = {"deep OTM (-h >= 4, -h >= s)", "small total vol (s < 1/4)", "other"};
  std::vector<std::size_t> rows[3];
  for (std::size_t i = 0; i < n; ++i) {
    if (st[i] != kIvOk) continue;
    const double x =
        -std::fabs(std::log(book.S[i] / book.K[i]) + (book.r[i] - book.q[i]) * book.T[i]);
    const double s = book.v[i] * std::sqrt(book.T[i]), h = x / s;
    rows[(-h >= 4 && -h >= s) ? 0 : (s < 0.25 ? 1 : 2)].push_back(i);
  }
  for (int g = 0; g < 3; ++g) {
    const std::size_t m = rows[g].size();
    if (m == 0) continue;
    std::vector<double> c[6];
    std::vector<std::int8_t> cw(m), cs(m);
    for (auto& col : c) col.resize(m);
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t i = rows[g][j];
      c[0][j] = price[i];
      c[1][j] = book.S[i];
      c[2][j] = book.K[i];
      c[3][j] = book.T[i];
      c[4][j] = book.r[i];
      c[5][j] = book.q[i];
      cw[j] = book.w[i];
    }
    ImpliedVolBatch rb;
    rb.price = view(c[0]);
    rb.spot = view(c[1]);
    rb.strike = view(c[2]);
    rb.expiry = view(c[3]);
    rb.rate = view(c[4]);
    rb.dividend = view(c[5]);
    rb.type = view(cw);
    rb.n = m;
    std::vector<double> cv(m);
    std::printf("  %-28s %7zu rows: %6.1f ns/option, 1 thread\n", names[g], m,
                best_ns([&] { implied_vol(rb, cv.data(), cs.data(), 1); }, 5, m, true));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "all";
  const std::size_t n = 1000000;
  const Book book(n);
  if (!std::strcmp(what, "all") || !std::strcmp(what, "greeks")) greeks(book, n);
  if (!std::strcmp(what, "all") || !std::strcmp(what, "iv")) iv(book, n);
  return 0;
}
