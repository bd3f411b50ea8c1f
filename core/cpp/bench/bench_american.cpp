// Micro-benchmark of the American ALO engine, called directly (no Python): time per option of the
// default scheme (thread CPU time, best of several repetitions) and its maximum absolute error
// against a fine FP-B scheme (32 nodes, 64/128 points, 24 iterations; agrees with QuantLib's QD-FP
// high-precision engine to 1.6e-6 on the book of bench/test_bench_american.py; FP-A at that
// resolution does not settle for puts with q slightly above r) on a book like that one.
//   cmake -S . -B build/bench -DTC_BENCH=ON && cmake --build build/bench --target bench_american
//   build/bench/bench_american [rows [repetitions: timing only]]
// TC_GREEKS=1: also compute the five Greeks (delta, gamma, theta, vega, rho), as
// tradecore.pricing.american does by default; for instruction counts of price only vs with
// Greeks on a fixed book: valgrind --tool=callgrind build/bench/bench_american 400 1.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "tradecore/pricing/american.hpp"

using namespace tradecore;
using namespace tradecore::pricing;

namespace {

double thread_cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

template <class T>
In<T> view(const std::vector<T>& v) {
  In<T> c;
  c.data = v.data();
  c.stride = 1;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? static_cast<std::size_t>(std::atol(argv[1])) : 2000;
  std::vector<double> S(n), K(n, 100.0), T(n), r(n), q(n), v(n);
  std::vector<std::int8_t> w(n);
  std::mt19937_64 g(7);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    S[i] = 70.0 + 60.0 * U(g);
    T[i] = (7.0 + std::floor((3 * 365 - 7) * U(g))) / 365.0;
    r[i] = 0.10 * U(g);
    q[i] = 0.10 * U(g);
    v[i] = 0.1 + 0.5 * U(g);
    w[i] = U(g) < 0.5 ? 1 : -1;
  }
  EuropeanBatch b;
  b.spot = view(S);
  b.strike = view(K);
  b.expiry = view(T);
  b.rate = view(r);
  b.dividend = view(q);
  b.vol = view(v);
  b.type = view(w);
  b.n = n;
  std::vector<double> price(n), ref(n);
  std::vector<double> greeks(5 * n);
  AmericanOut out;
  out.price = price.data();
  const char* want_greeks = std::getenv("TC_GREEKS");
  const bool with_greeks = want_greeks != nullptr && want_greeks[0] == '1';
  if (with_greeks) {
    out.delta = greeks.data();
    out.gamma = out.delta + n;
    out.theta = out.gamma + n;
    out.vega = out.theta + n;
    out.rho = out.vega + n;
  }
  AmericanSettings s;
  // Another scheme to time: TC_ALO_SCHEME="nodes,quadrature,iterations,price_quadrature".
  if (const char* sch = std::getenv("TC_ALO_SCHEME")) {
    if (std::sscanf(sch, "%d,%d,%d,%d", &s.alo_nodes, &s.alo_quadrature, &s.alo_iterations,
                    &s.alo_price_quadrature) != 4) {
      std::fprintf(stderr, "TC_ALO_SCHEME: nodes,quadrature,iterations,price_quadrature\n");
      return 2;
    }
    validate(s);
  }
  double best = 1e300;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;  // a profiler wants many
  for (int k = 0; k < reps; ++k) {
    const double t0 = thread_cpu();
    american(b, out, s, 1);
    best = std::min(best, thread_cpu() - t0);
  }
  if (argc > 2) {
    std::printf("alo %d,%d,%d,%d%s: %.3f us/option\n", s.alo_nodes, s.alo_quadrature,
                s.alo_iterations, s.alo_price_quadrature, with_greeks ? " with Greeks" : "",
                best / static_cast<double>(n) * 1e6);
    return 0;
  }
  AmericanSettings p;
  p.alo_nodes = 32;
  p.alo_quadrature = 64;
  p.alo_price_quadrature = 128;
  p.alo_iterations = 24;
  p.alo_equation = AloEquation::FpB;
  AmericanOut ro;
  ro.price = ref.data();
  american(b, ro, p, 0);
  double err = 0.0;
  std::size_t worst = 0, over = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = std::abs(price[i] - ref[i]);
    over += e > 1e-4 ? 1 : 0;
    if (e > err) {
      err = e;
      worst = i;
    }
  }
  std::printf(
      "alo %d,%d,%d,%d: %.3f us/option (CPU time, 1 thread, %zu rows), max |err| vs fine "
      "FP-B %.2e (row %zu: S %.17g T %.17g r %.17g q %.17g v %.17g %s)\n",
      s.alo_nodes, s.alo_quadrature, s.alo_iterations, s.alo_price_quadrature,
      best / static_cast<double>(n) * 1e6, n, err, worst, S[worst], T[worst], r[worst], q[worst],
      v[worst], w[worst] > 0 ? "call" : "put");
  std::printf("  rows with |err| > 1e-4: %zu\n", over);
  if (const char* path = std::getenv("TC_ALO_DUMP")) {  // both columns, for comparing builds
    if (FILE* f = std::fopen(path, "wb")) {
      std::fwrite(price.data(), sizeof(double), n, f);
      std::fwrite(ref.data(), sizeof(double), n, f);
      std::fclose(f);
    }
  }
  return 0;
}
