// Binomial trees for American options: Cox-Ross-Rubinstein (1979) and Leisen-Reimer (1996,
// Peizer-Pratt method-2 inversion). Backward induction with the exercise test at every node;
// any exercise region (one or two boundaries) is handled.
#include <algorithm>
#include <cmath>
#include <vector>

#include "american_detail.hpp"

namespace tradecore::pricing::detail {

namespace {

// Backward induction on a recombining tree with up/down factors u, d and up-probability p.
// Node (step i, j up-moves) has spot S u^j d^(i-j). Fills f2[0..2] with step-2 values.
double induct(const AmericanOption& o, int steps, double u, double d, double p,
              std::vector<double>& f, double f2[3]) {
  const double S = o.spot, K = o.strike, w = o.type == kCall ? 1.0 : -1.0;
  const double dt = o.expiry / steps, disc = std::exp(-o.rate * dt);
  const double pu = disc * p, pd = disc * (1.0 - p);
  const double ratio = u / d;
  f.resize(static_cast<std::size_t>(steps) + 1);
  double s = S * std::pow(d, steps);
  for (int j = 0; j <= steps; ++j) {
    f[static_cast<std::size_t>(j)] = std::max(w * (s - K), 0.0);
    s *= ratio;
  }
  for (int i = steps - 1; i >= 0; --i) {
    double si = S * std::pow(d, i);
    for (int j = 0; j <= i; ++j) {
      const auto k = static_cast<std::size_t>(j);
      const double cont = pu * f[k + 1] + pd * f[k];
      f[k] = std::max(cont, w * (si - K));
      si *= ratio;
    }
    if (i == 2) std::copy(f.begin(), f.begin() + 3, f2);
  }
  return f[0];
}

TreeResult finish(const AmericanOption& o, double price, double u, double d, const double f2[3]) {
  const double S = o.spot;
  const double x0 = S * d * d, x1 = S * u * d, x2 = S * u * u;
  const double d01 = (f2[1] - f2[0]) / (x1 - x0), d12 = (f2[2] - f2[1]) / (x2 - x1);
  const double d012 = (d12 - d01) / (x2 - x0);
  TreeResult res{};
  res.price = price;
  res.delta = d01 + d012 * ((S - x0) + (S - x1));
  res.gamma = 2.0 * d012;
  const double intrinsic = std::max((o.type == kCall ? 1.0 : -1.0) * (S - o.strike), 0.0);
  const double v = o.vol;
  res.theta =
      price > intrinsic + 1e-12 * o.strike
          ? o.rate * price - (o.rate - o.dividend) * S * res.delta - 0.5 * v * v * S * S * res.gamma
          : 0.0;
  return res;
}

double peizer_pratt(double z, int n) {
  const double t = z / (n + 1.0 / 3.0 + 0.1 / (n + 1.0));
  const double h =
      0.5 + std::copysign(0.5, z) * std::sqrt(1.0 - std::exp(-t * t * (n + 1.0 / 6.0)));
  return h;
}

}  // namespace

TreeResult crr_tree(const AmericanOption& o, int steps, std::vector<double>& work) {
  steps = std::max(steps, 3);
  const double dt = o.expiry / steps;
  const double u = std::exp(o.vol * std::sqrt(dt)), d = 1.0 / u;
  const double p = (std::exp((o.rate - o.dividend) * dt) - d) / (u - d);
  double f2[3];
  const double price = induct(o, steps, u, d, p, work, f2);
  return finish(o, price, u, d, f2);
}

TreeResult lr_tree(const AmericanOption& o, int steps, std::vector<double>& work) {
  steps = std::max(steps, 3);
  if (steps % 2 == 0) ++steps;
  const double T = o.expiry, v = o.vol, sT = v * std::sqrt(T);
  const double d1 = (std::log(o.spot / o.strike) + (o.rate - o.dividend + 0.5 * v * v) * T) / sT;
  const double d2 = d1 - sT;
  const double dt = T / steps, growth = std::exp((o.rate - o.dividend) * dt);
  const double p = peizer_pratt(d2, steps), pp = peizer_pratt(d1, steps);
  const double u = growth * pp / p, d = (growth - p * u) / (1.0 - p);
  double f2[3];
  const double price = induct(o, steps, u, d, p, work, f2);
  return finish(o, price, u, d, f2);
}

}  // namespace tradecore::pricing::detail
