// The Monte-Carlo VaR kernel without Python: path losses against a direct scalar computation
// (the Philox normal, the lognormal horizon, the accurate European kernel), thread and split
// invariance, the VaR/ES reduction's definition, and argument checks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "tradecore/common.hpp"
#include "tradecore/pricing/black_kernels.hpp"
#include "tradecore/risk/montecarlo.hpp"
#include "tradecore/risk/philox.hpp"

using namespace tradecore;

namespace {

// One underlying (S 100, vol 0.3, q 0.01, r 0.03); a stock and a European put.
struct Setup {
  double spot = 100.0, vol = 0.3, div = 0.01, L = 1.0;
  std::int32_t und[2] = {0, 0};
  std::int8_t kind[2] = {risk::kMcEquity, risk::kMcEuropean};
  std::int8_t type[2] = {0, -1};
  double strike[2] = {0.0, 95.0}, expiry[2] = {0.0, 0.5}, vnow[2] = {100.0, 0.0};
  std::int64_t goff[2] = {0, 0};
  std::int32_t gsize[2] = {0, 0};
  double gx0[2] = {0, 0}, gdx[2] = {0, 0}, gval[1] = {0};
  std::int32_t inst[2] = {0, 1}, pf[2] = {0, 0};
  double units[2] = {200.0, 1000.0};
  double delta = 0, gamma = 0, theta = 0;
  risk::McMarket mk;
  risk::McInstruments in;
  risk::McPositions pos;

  double put_price(double S, double T) const {
    double g[pricing::kNumEuropeanColumns];
    pricing::european_greeks(S, 95.0, T, 0.03, div, vol, -1.0, false, g);
    return g[pricing::kPrice];
  }

  Setup() {
    vnow[1] = put_price(spot, 0.5);
    mk.n = 1;
    mk.spot = &spot;
    mk.vol = &vol;
    mk.dividend = &div;
    mk.rate = 0.03;
    mk.cholesky = &L;
    in.m = 2;
    in.underlying = und;
    in.kind = kind;
    in.type = type;
    in.strike = strike;
    in.expiry = expiry;
    in.value_now = vnow;
    in.grid_offset = goff;
    in.grid_size = gsize;
    in.grid_x0 = gx0;
    in.grid_dx = gdx;
    in.grid_values = gval;
    in.grid_total = 1;
    pos.count = 2;
    pos.portfolios = 1;
    pos.instrument = inst;
    pos.portfolio = pf;
    pos.units = units;
    pos.dg_delta = &delta;
    pos.dg_gamma = &gamma;
    pos.dg_theta = &theta;
  }
};

risk::McConfig config(std::uint64_t first, std::uint64_t paths, int threads) {
  risk::McConfig c;
  c.horizon = 5.0 / 252.0;
  c.seed = 0x5eed;
  c.first_path = first;
  c.paths = paths;
  c.threads = threads;
  return c;
}

}  // namespace

TEST(path_losses_are_the_direct_computation) {
  const Setup s;
  const std::uint64_t paths = 1000;
  std::vector<double> full(paths), dg(paths);
  risk::monte_carlo_losses(s.mk, s.in, s.pos, config(0, paths, 2), {full.data(), dg.data()});
  const double h = 5.0 / 252.0;
  for (std::uint64_t i = 0; i < paths; ++i) {
    const double z = risk::normal(0x5eed, i, 0);
    const double Sh = 100.0 * std::exp(-0.5 * 0.09 * h + 0.3 * std::sqrt(h) * z);
    const double expected = 200.0 * (100.0 - Sh) + 1000.0 * (s.vnow[1] - s.put_price(Sh, 0.5 - h));
    CHECK(tc_test::near(full[i], expected, 1e-11));
    CHECK(dg[i] == 0.0);  // no sensitivities given
  }
}

TEST(losses_do_not_depend_on_threads_or_split) {
  const Setup s;
  const std::uint64_t paths = 3001;
  std::vector<double> a(paths), b(paths), t(paths - 777), d1(paths), d2(paths), d3(paths - 777);
  risk::monte_carlo_losses(s.mk, s.in, s.pos, config(0, paths, 1), {a.data(), d1.data()});
  risk::monte_carlo_losses(s.mk, s.in, s.pos, config(0, paths, 3), {b.data(), d2.data()});
  risk::monte_carlo_losses(s.mk, s.in, s.pos, config(777, paths - 777, 2), {t.data(), d3.data()});
  CHECK(a == b);
  CHECK(std::equal(t.begin(), t.end(), a.begin() + 777));
}

TEST(tail_stats_follow_the_definition) {
  // Losses 1..1000 shuffled, c = 0.99: k = ceil(990) = 990th smallest = 990; ES = mean of
  // 990..1000 = 995; ceil(sqrt(1000 * 0.99 * 0.01)) = 4 order statistics either side.
  std::vector<double> x(1000);
  std::iota(x.begin(), x.end(), 1.0);
  std::shuffle(x.begin(), x.end(), std::mt19937(7));
  const risk::TailStats t = risk::tail_stats(x.data(), x.size(), 0.99);
  CHECK(t.var == 990.0);
  CHECK(t.es == 995.0);
  CHECK(t.var_stderr == 0.5 * (994.0 - 986.0));
  const double tail_var = 10.0;  // population variance of 990..1000
  CHECK(tc_test::near(t.es_stderr, std::sqrt((tail_var + 0.99 * 25.0) / 11.0), 1e-15));
}

TEST(a_loss_that_is_not_finite_is_refused) {
  std::vector<double> x(2 * 100, 1.0);
  risk::TailStats out[2];
  risk::tail_stats_rows(x.data(), 2, 100, 0.9, out, 2);
  CHECK(out[1].var == 1.0 && out[1].es == 1.0);
  x[100 + 37] = NAN;
  CHECK_THROWS(Error, risk::tail_stats_rows(x.data(), 2, 100, 0.9, out, 2));
}

TEST(invalid_arguments_are_rejected) {
  const Setup s;
  double out[8], out2[8];
  risk::McConfig c = config(0, 8, 1);
  c.horizon = 0.0;
  CHECK_THROWS(std::invalid_argument, risk::monte_carlo_losses(s.mk, s.in, s.pos, c, {out, out2}));
  c = config(0, 8, 1);
  c.student_t_dof = 2;
  CHECK_THROWS(std::invalid_argument, risk::monte_carlo_losses(s.mk, s.in, s.pos, c, {out, out2}));
  c = config(0, 0, 1);
  CHECK_THROWS(std::invalid_argument, risk::monte_carlo_losses(s.mk, s.in, s.pos, c, {out, out2}));
  c = config(0, 8, 1);
  c.horizon = 0.6;  // the European put expires within it: it must be given as intrinsic
  CHECK_THROWS(std::invalid_argument, risk::monte_carlo_losses(s.mk, s.in, s.pos, c, {out, out2}));
  std::vector<double> x(10, 1.0);
  CHECK_THROWS(std::invalid_argument, risk::tail_stats(x.data(), x.size(), 1.0));
}

TEST_MAIN()
