// American options: method dispatch, regimes, Greeks and the batch entry point.
#include "tradecore/pricing/american.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../threads.hpp"
#include "american_detail.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {

namespace {

using detail::Regime;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSpotBump = 1e-4;  // relative, for delta/gamma by central differences
constexpr double kVolBump = 1e-4;   // absolute, vega
constexpr double kRateBump = 1e-4;  // absolute, rho
constexpr double kTimeBump = 1e-4;  // years, theta of the closed-form approximations

struct Greeks {
  double price = kNaN, delta = kNaN, gamma = kNaN, theta = kNaN, vega = kNaN, rho = kNaN;
};

struct Want {
  bool spot = false;  // delta, gamma, theta
  bool vega = false;
  bool rho = false;
};

// Per-thread state of a batch: the ALO tables are shared read-only, the tree buffer is owned.
struct Context {
  const AmericanSettings& s;
  const detail::AloTables* alo;
  std::vector<double> work;
};

// The double-boundary fallback's view of the settings: the LR tree (steps set per pass).
AmericanSettings fallback_settings(const AmericanSettings& s) {
  AmericanSettings lr = s;
  lr.method = AmericanMethod::Lr;
  return lr;
}

Regime regime_of(const AmericanOption& o) {
  return o.type == kCall ? detail::put_regime(o.dividend, o.rate)
                         : detail::put_regime(o.rate, o.dividend);
}

bool valid(const AmericanOption& o) {
  return spot_ok(o.spot) && strike_ok(o.strike) && expiry_ok(o.expiry) && rate_ok(o.rate) &&
         rate_ok(o.dividend) && vol_ok(o.vol) && (o.type == kCall || o.type == kPut);
}

bool single_boundary_method(AmericanMethod m) {
  return m != AmericanMethod::Crr && m != AmericanMethod::Lr;
}

// Whether the row is handed to the Richardson LR tree (a double-boundary row of Alo/Baw/Bjs2002).
bool falls_back(const AmericanSettings& s, Regime g) {
  return g == Regime::DoubleBoundary && single_boundary_method(s.method) && s.double_boundary_tree;
}

bool refuses(const AmericanSettings& s, Regime g) {
  return g == Regime::DoubleBoundary && single_boundary_method(s.method) && !s.double_boundary_tree;
}

Greeks european_greeks(const AmericanOption& o) {
  EuropeanBatch b;
  b.spot = {&o.spot, 0};
  b.strike = {&o.strike, 0};
  b.expiry = {&o.expiry, 0};
  b.rate = {&o.rate, 0};
  b.dividend = {&o.dividend, 0};
  b.vol = {&o.vol, 0};
  b.type = {&o.type, 0};
  b.n = 1;
  Greeks g;
  EuropeanOut out;
  out.price = &g.price;
  out.delta = &g.delta;
  out.gamma = &g.gamma;
  out.vega = &g.vega;
  out.theta = &g.theta;
  out.rho = &g.rho;
  european_unchecked(b, out, 1);
  return g;
}

// The ALO boundary of the option's put form (a call is the put with S<->K, r<->q), with its
// sensitivities along tan's directions when tan is given.
void alo_boundary_of(const AmericanOption& o, const detail::AloTables& t, detail::AloBoundary& b,
                     detail::AloTangent* tan = nullptr) {
  if (o.type == kCall) {
    detail::alo_solve(t, o.dividend, o.rate, o.vol, o.expiry, b, tan);
  } else {
    detail::alo_solve(t, o.rate, o.dividend, o.vol, o.expiry, b, tan);
  }
}

// Value at spot S with a solved boundary: put K p1(S/K), call S p1(K/S).
double alo_value_at(const AmericanOption& o, const detail::AloTables& t,
                    const detail::AloBoundary& b, double S) {
  return o.type == kCall ? S * detail::alo_unit_put(t, b, o.strike / S)
                         : o.strike * detail::alo_unit_put(t, b, S / o.strike);
}

// The Richardson-extrapolated LR tree price (the double-boundary fallback).
double richardson_tree_price(const AmericanOption& o, Context& c) {
  constexpr double n1 = kDoubleBoundarySteps[0], n2 = kDoubleBoundarySteps[1];
  const double p1 = detail::lr_tree(o, kDoubleBoundarySteps[0], c.work).price;
  const double p2 = detail::lr_tree(o, kDoubleBoundarySteps[1], c.work).price;
  return (n2 * p2 - n1 * p1) / (n2 - n1);
}

// Price of a valid option with T > 0 (double-boundary rows of a single-boundary method: the
// fallback tree, or NaN where the settings refuse them).
double price_only(const AmericanOption& o, Context& c) {
  if (o.expiry <= 0.0) {
    return std::max((o.type == kCall ? 1.0 : -1.0) * (o.spot - o.strike), 0.0);
  }
  const Regime g = regime_of(o);
  if (g == Regime::European) {
    return detail::bsm_price(o.spot, o.strike, o.expiry, o.rate, o.dividend, o.vol,
                             o.type == kCall ? 1.0 : -1.0);
  }
  if (refuses(c.s, g)) return kNaN;
  if (falls_back(c.s, g)) return richardson_tree_price(o, c);
  switch (c.s.method) {
    case AmericanMethod::Alo: {
      detail::AloBoundary b{};
      alo_boundary_of(o, *c.alo, b);
      return alo_value_at(o, *c.alo, b, o.spot);
    }
    case AmericanMethod::Baw:
      return detail::baw_single(o);
    case AmericanMethod::Bjs2002:
      return detail::bjs_single(o);
    case AmericanMethod::Crr:
      return detail::crr_tree(o, c.s.steps, c.work).price;
    case AmericanMethod::Lr:
      return detail::lr_tree(o, c.s.steps, c.work).price;
  }
  return kNaN;
}

double pde_theta(const AmericanOption& o, double price, double delta, double gamma) {
  const double intrinsic = std::max((o.type == kCall ? 1.0 : -1.0) * (o.spot - o.strike), 0.0);
  if (!(price > intrinsic + 1e-12 * o.strike)) return 0.0;  // exercised now: V does not age
  const double v = o.vol, S = o.spot;
  return o.rate * price - (o.rate - o.dividend) * S * delta - 0.5 * v * v * S * S * gamma;
}

Greeks compute(const AmericanOption& o, Context& c, const Want& want);

// The double-boundary fallback's price and Greeks: each the Richardson combination of the LR
// tree's values at the two step counts (vega and rho: of its bumped prices).
Greeks compute_fallback(const AmericanOption& o, Context& c, const Want& want) {
  AmericanSettings lr = fallback_settings(c.s);
  Context tc{lr, c.alo, std::move(c.work)};
  lr.steps = kDoubleBoundarySteps[0];
  const Greeks g1 = compute(o, tc, want);
  lr.steps = kDoubleBoundarySteps[1];
  const Greeks g2 = compute(o, tc, want);
  c.work = std::move(tc.work);
  constexpr double n1 = kDoubleBoundarySteps[0], n2 = kDoubleBoundarySteps[1];
  auto rich = [&](double a, double b) { return (n2 * b - n1 * a) / (n2 - n1); };
  Greeks g;
  g.price = rich(g1.price, g2.price);
  g.delta = rich(g1.delta, g2.delta);
  g.gamma = rich(g1.gamma, g2.gamma);
  g.theta = rich(g1.theta, g2.theta);
  g.vega = rich(g1.vega, g2.vega);
  g.rho = rich(g1.rho, g2.rho);
  return g;
}

// Greeks as central differences of the engine's own prices (g.price already set).
void bumped_spot_greeks(const AmericanOption& o, Context& c, Greeks& g) {
  AmericanOption b = o;
  const double h = kSpotBump * o.spot;
  b.spot = o.spot + h;
  const double up = price_only(b, c);
  b.spot = o.spot - h;
  const double dn = price_only(b, c);
  g.delta = (up - dn) / (2.0 * h);
  g.gamma = (up - 2.0 * g.price + dn) / (h * h);
  b = o;
  const double ht = std::min(kTimeBump, 0.5 * o.expiry);
  b.expiry = o.expiry + ht;
  const double later = price_only(b, c);
  b.expiry = o.expiry - ht;
  const double sooner = price_only(b, c);
  g.theta = -(later - sooner) / (2.0 * ht);
}

double bumped_vega(const AmericanOption& o, Context& c) {
  AmericanOption b = o;
  b.vol = o.vol + kVolBump;
  const double up = price_only(b, c);
  b.vol = std::max(o.vol - kVolBump, 0.5 * o.vol);
  const double dn = price_only(b, c);
  return (up - dn) / (o.vol + kVolBump - b.vol);
}

double bumped_rho(const AmericanOption& o, Context& c) {
  AmericanOption b = o;
  b.rate = o.rate + kRateBump;
  const double up = price_only(b, c);
  b.rate = o.rate - kRateBump;
  const double dn = price_only(b, c);
  return (up - dn) / (2.0 * kRateBump);
}

// ALO price and Greeks from one boundary solve and one premium integral. The put form's value
// is the European unit put plus the premium p(x) (put: V = K p(S/K) + ..., call: V = S p(K/S)
// + ..., the European part being the option's own European value); delta and gamma follow from
// p'(x) and p''(x) at the fixed boundary (it does not depend on S), vega and rho from the
// premium's derivatives along sigma and the option's rate (the put form's r for a put, its q for
// a call), which carry the boundary's sensitivities (alo_solve's tangents); theta from the PDE.
Greeks compute_alo(const AmericanOption& o, Context& c, const Want& want) {
  if (!want.spot && !want.vega && !want.rho) {
    Greeks g;
    g.price = price_only(o, c);
    return g;
  }
  const bool call = o.type == kCall;
  detail::AloTangent tan;
  int vega_dir = -1, rho_dir = -1;
  if (want.vega) {
    vega_dir = tan.dirs++;
    tan.dir[vega_dir].dv = 1.0;
  }
  if (want.rho) {
    rho_dir = tan.dirs++;
    (call ? tan.dir[rho_dir].dq : tan.dir[rho_dir].dr) = 1.0;
  }
  detail::AloBoundary b{};
  alo_boundary_of(o, *c.alo, b, tan.dirs > 0 ? &tan : nullptr);
  const double S = o.spot, K = o.strike;
  const double x = call ? K / S : S / K, scale = call ? S : K;
  const detail::AloPremium p = detail::alo_unit_premium(*c.alo, b, tan, x);
  Greeks g;
  if (p.exercise || !(p.euro + p.value > 1.0 - x)) {
    // Exercised now: the intrinsic value (as alo_unit_put: max(value, 1 - x)).
    g.price = scale * (1.0 - x);
    g.delta = call ? 1.0 : -1.0;
    g.gamma = 0.0;
    g.theta = 0.0;
    g.vega = 0.0;
    g.rho = 0.0;
    return g;
  }
  double e[kNumEuropeanColumns];
  pricing::european_greeks(S, K, o.expiry, o.rate, o.dividend, o.vol, call ? 1.0 : -1.0, false, e);
  g.price = scale * (p.euro + p.value);
  if (want.spot) {
    g.delta = e[kDelta] + (call ? p.value - x * p.dx : p.dx);
    g.gamma = e[kGamma] + (call ? x * x * p.dxx / S : p.dxx / K);
    g.theta = pde_theta(o, g.price, g.delta, g.gamma);
  }
  if (want.vega) g.vega = e[kVega] + scale * p.dir[vega_dir];
  if (want.rho) g.rho = e[kRho] + scale * p.dir[rho_dir];
  // At the domain's corners (e.g. T ~ 1e-12 with r = q, spot 1e-8 against a strike of 100) the
  // tangents can meet 0/0; such a row takes central differences of the engine's prices.
  if (want.spot && !(std::isfinite(g.delta) && std::isfinite(g.gamma) && std::isfinite(g.theta)))
    bumped_spot_greeks(o, c, g);
  if (want.vega && !std::isfinite(g.vega)) g.vega = bumped_vega(o, c);
  if (want.rho && !std::isfinite(g.rho)) g.rho = bumped_rho(o, c);
  return g;
}

Greeks compute(const AmericanOption& o, Context& c, const Want& want) {
  if (o.expiry <= 0.0 || regime_of(o) == Regime::European) {
    Greeks g = european_greeks(o);
    return g;
  }
  if (falls_back(c.s, regime_of(o))) return compute_fallback(o, c, want);
  Greeks g;
  const AmericanMethod m = c.s.method;
  if (m == AmericanMethod::Alo) return compute_alo(o, c, want);
  if (m == AmericanMethod::Crr || m == AmericanMethod::Lr) {
    const detail::TreeResult t = m == AmericanMethod::Crr ? detail::crr_tree(o, c.s.steps, c.work)
                                                          : detail::lr_tree(o, c.s.steps, c.work);
    g.price = t.price;
    g.delta = t.delta;
    g.gamma = t.gamma;
    g.theta = t.theta;
  } else {
    g.price = price_only(o, c);
    if (want.spot) bumped_spot_greeks(o, c, g);
  }
  if (want.vega) g.vega = bumped_vega(o, c);  // Baw, Bjs2002 and the trees: bumped prices
  if (want.rho) g.rho = bumped_rho(o, c);
  return g;
}

// Boundary of one valid row (Alo): critical spots at points times to expiry in [0, T].
void boundary_row(const AmericanOption& o, Context& c, const double* tau, std::size_t points,
                  double* out) {
  const Regime g = regime_of(o);
  if (g == Regime::DoubleBoundary) {
    std::fill(out, out + points, kNaN);
    return;
  }
  if (o.expiry <= 0.0 || g == Regime::European) {
    const double never = o.type == kCall ? kInf : 0.0;
    for (std::size_t j = 0; j < points; ++j) out[j] = (o.expiry <= 0.0) ? o.strike : never;
    return;
  }
  detail::AloBoundary b{};
  alo_boundary_of(o, *c.alo, b);
  for (std::size_t j = 0; j < points; ++j) {
    const double t = std::clamp(tau[j], 0.0, o.expiry);
    const double unit = std::exp(b.log_b(std::sqrt(t)));
    out[j] = o.type == kCall ? o.strike / unit : o.strike * unit;
  }
}

AmericanOption row(const EuropeanBatch& in, std::size_t i) {
  AmericanOption o;
  o.spot = in.spot[i];
  o.strike = in.strike[i];
  o.expiry = in.expiry[i];
  o.rate = in.rate[i];
  o.dividend = in.dividend[i];
  o.vol = in.vol[i];
  o.type = in.type[i];
  return o;
}

using ::tradecore::detail::resolve_threads;

void check_regime(const AmericanOption& o, const AmericanSettings& s) {
  if (o.expiry > 0.0 && refuses(s, regime_of(o))) {
    const AmericanMethod m = s.method;
    throw UnsupportedRegime(
        std::string("american: method '") + american_method_name(m) +
        "' does not price the double-boundary regime (put: q < r <= 0, call: r < q <= 0); "
        "use a tree ('crr' or 'lr')");
  }
}

std::uint8_t engine_of(const AmericanOption& o, const AmericanSettings& s) {
  const Regime g = regime_of(o);
  if (o.expiry <= 0.0 || g == Regime::European) return kEngineEuropean;
  if (falls_back(s, g)) return kEngineLrRichardson;
  switch (s.method) {
    case AmericanMethod::Alo:
      return kEngineAlo;
    case AmericanMethod::Baw:
      return kEngineBaw;
    case AmericanMethod::Bjs2002:
      return kEngineBjs2002;
    case AmericanMethod::Crr:
      return kEngineCrr;
    case AmericanMethod::Lr:
      return kEngineLr;
  }
  return kEngineNone;
}

void validate_option(const AmericanOption& o) {
  EuropeanBatch b;
  b.spot = {&o.spot, 0};
  b.strike = {&o.strike, 0};
  b.expiry = {&o.expiry, 0};
  b.rate = {&o.rate, 0};
  b.dividend = {&o.dividend, 0};
  b.vol = {&o.vol, 0};
  b.type = {&o.type, 0};
  b.n = 1;
  validate(b);
}

}  // namespace

AmericanMethod american_method_from_name(const char* name) {
  const std::string s = name ? name : "";
  if (s == "alo") return AmericanMethod::Alo;
  if (s == "baw") return AmericanMethod::Baw;
  if (s == "bjs2002") return AmericanMethod::Bjs2002;
  if (s == "crr") return AmericanMethod::Crr;
  if (s == "lr") return AmericanMethod::Lr;
  throw std::invalid_argument("method must be one of 'alo', 'baw', 'bjs2002', 'crr', 'lr' (got '" +
                              s + "')");
}

const char* american_method_name(AmericanMethod m) noexcept {
  switch (m) {
    case AmericanMethod::Alo:
      return "alo";
    case AmericanMethod::Baw:
      return "baw";
    case AmericanMethod::Bjs2002:
      return "bjs2002";
    case AmericanMethod::Crr:
      return "crr";
    case AmericanMethod::Lr:
      return "lr";
  }
  return "?";
}

void validate(const AmericanSettings& s) {
  auto need = [](bool ok, const char* name, int v, const char* range) {
    if (!ok)
      throw std::invalid_argument(std::string(name) + " must be in " + range + " (got " +
                                  std::to_string(v) + ")");
  };
  const int m = static_cast<int>(s.method);
  need(m >= 0 && m <= 4, "method", m, "[0, 4]");
  need(s.steps >= 1 && s.steps <= 100000, "steps", s.steps, "[1, 100000]");
  need(s.alo_nodes >= 2 && s.alo_nodes <= detail::kAloMaxNodes, "alo_nodes", s.alo_nodes,
       "[2, 64]");
  need(s.alo_quadrature >= 2 && s.alo_quadrature <= 128, "alo_quadrature", s.alo_quadrature,
       "[2, 128]");
  need(s.alo_iterations >= 0 && s.alo_iterations <= 100, "alo_iterations", s.alo_iterations,
       "[0, 100]");
  need(s.alo_price_quadrature >= 2 && s.alo_price_quadrature <= 256, "alo_price_quadrature",
       s.alo_price_quadrature, "[2, 256]");
}

std::size_t american(const EuropeanBatch& in, const AmericanOut& out, const AmericanSettings& s,
                     int threads) {
  validate(s);
  const bool want_boundary = out.boundary != nullptr || out.boundary_time != nullptr;
  if (want_boundary) {
    if (s.method != AmericanMethod::Alo)
      throw std::invalid_argument("boundary: only method 'alo' computes the exercise boundary");
    if (out.boundary_points < 2) throw std::invalid_argument("boundary_points must be >= 2");
  }
  const detail::AloTables tables = s.method == AmericanMethod::Alo || want_boundary
                                       ? detail::make_alo_tables(s)
                                       : detail::AloTables{};
  const Want want{out.delta || out.gamma || out.theta, out.vega != nullptr, out.rho != nullptr};
  const std::size_t n = in.n, P = out.boundary_points;
  const auto nn = static_cast<std::ptrdiff_t>(n);
  std::size_t failed = 0;
  const int nt = n < 2 ? 1 : resolve_threads(threads);
#pragma omp parallel num_threads(nt) reduction(+ : failed)
  {
    Context ctx{s, &tables, {}};
    std::vector<double> tau(want_boundary ? P : 0);
#pragma omp for schedule(dynamic, 8)
    for (std::ptrdiff_t ii = 0; ii < nn; ++ii) {
      const auto i = static_cast<std::size_t>(ii);
      const AmericanOption o = row(in, i);
      std::uint8_t st = kAmericanOk;
      Greeks g;
      if (!valid(o)) {
        st = kAmericanInvalid;
      } else if (o.expiry > 0.0 && refuses(s, regime_of(o))) {
        st = kAmericanUnsupported;
      } else {
        g = compute(o, ctx, want);
      }
      if (st != kAmericanOk) ++failed;
      if (out.engine) out.engine[i] = st == kAmericanOk ? engine_of(o, s) : kEngineNone;
      if (out.price) out.price[i] = g.price;
      if (out.delta) out.delta[i] = g.delta;
      if (out.gamma) out.gamma[i] = g.gamma;
      if (out.theta) out.theta[i] = g.theta;
      if (out.vega) out.vega[i] = g.vega;
      if (out.rho) out.rho[i] = g.rho;
      if (out.status) out.status[i] = st;
      if (want_boundary) {
        const double T = st == kAmericanInvalid ? kNaN : o.expiry;
        for (std::size_t j = 0; j < P; ++j)
          tau[j] = T * static_cast<double>(j) / static_cast<double>(P - 1);
        if (out.boundary_time) std::copy(tau.begin(), tau.end(), out.boundary_time + i * P);
        if (out.boundary) {
          if (st != kAmericanOk) {
            std::fill(out.boundary + i * P, out.boundary + (i + 1) * P, kNaN);
          } else {
            boundary_row(o, ctx, tau.data(), P, out.boundary + i * P);
          }
        }
      }
    }
  }
  return failed;
}

double american_price(const AmericanOption& o, const AmericanSettings& s) {
  validate(s);
  validate_option(o);
  check_regime(o, s);
  const detail::AloTables tables =
      s.method == AmericanMethod::Alo ? detail::make_alo_tables(s) : detail::AloTables{};
  Context ctx{s, &tables, {}};
  return price_only(o, ctx);
}

void american_boundary(const AmericanOption& o, const AmericanSettings& s,
                       std::span<const double> tau, std::span<double> out) {
  validate(s);
  validate_option(o);
  AmericanSettings alo = s;
  alo.method = AmericanMethod::Alo;
  alo.double_boundary_tree = false;  // the boundary is ALO's: one boundary only
  check_regime(o, alo);
  if (tau.size() != out.size())
    throw std::invalid_argument("american_boundary: tau and out differ in length");
  for (std::size_t j = 0; j < tau.size(); ++j) {
    if (!(tau[j] >= 0.0 && tau[j] <= o.expiry))
      throw std::invalid_argument("tau[" + std::to_string(j) + "] must be in [0, expiry]");
  }
  const detail::AloTables tables = detail::make_alo_tables(s);
  Context ctx{s, &tables, {}};
  boundary_row(o, ctx, tau.data(), tau.size(), out.data());
}

double alo_price(const AmericanOption& o, const AmericanSettings& s) {
  AmericanSettings a = s;
  a.method = AmericanMethod::Alo;
  return american_price(o, a);
}

double baw_price(const AmericanOption& o) {
  AmericanSettings a;
  a.method = AmericanMethod::Baw;
  return american_price(o, a);
}

double bjs2002_price(const AmericanOption& o) {
  AmericanSettings a;
  a.method = AmericanMethod::Bjs2002;
  return american_price(o, a);
}

double crr_price(const AmericanOption& o, int steps) {
  AmericanSettings a;
  a.method = AmericanMethod::Crr;
  a.steps = steps;
  return american_price(o, a);
}

double lr_price(const AmericanOption& o, int steps) {
  AmericanSettings a;
  a.method = AmericanMethod::Lr;
  a.steps = steps;
  return american_price(o, a);
}

}  // namespace tradecore::pricing
