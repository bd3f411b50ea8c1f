#pragma once
// Volatility-surface evaluation kernels: raw SVI total variance and its k-derivatives, the
// Gatheral butterfly density g(k), Hagan et al. (2002) SABR lognormal implied vol, and a whole
// surface query (total variance linear in expiry at fixed log-moneyness).
//
// Conventions: k = ln(K / F) is log-moneyness against the forward of the same expiry; total
// implied variance w = sigma^2 * T. Parameter sets are validated (std::invalid_argument naming
// the parameter); per-element inputs are not: an element that has no value (K <= 0, T < 0,
// non-finite input, negative total variance) is written as NaN.
#include <cstddef>

#include "tradecore/common.hpp"

namespace tradecore::pricing {

// Raw SVI (Gatheral 2004): w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)).
struct SviParams {
  double a = 0.0;
  double b = 0.0;
  double rho = 0.0;
  double m = 0.0;
  double sigma = 0.0;
};

// SABR with lognormal (Black) implied vol from the Hagan et al. 2002 expansion.
struct SabrParams {
  double alpha = 0.0;
  double beta = 0.0;
  double rho = 0.0;
  double nu = 0.0;
};

// Rules: all finite; b >= 0; |rho| < 1; sigma > 0; a + b sigma sqrt(1 - rho^2) >= 0 (the minimum
// total variance is not negative). Throws std::invalid_argument("svi: rho must be ...").
void validate(const SviParams& p);

// Rules: all finite; alpha > 0; 0 <= beta <= 1; |rho| < 1; nu >= 0.
void validate(const SabrParams& p);

// w(k) and, where the pointer is not null, dw/dk and d2w/dk2. Outputs are contiguous, length n.
void svi_total_variance(const SviParams& p, In<double> k, std::size_t n, double* w, double* dw,
                        double* d2w, int threads = 0);

// Gatheral's butterfly density g(k) = (1 - k w'/(2w))^2 - (w'^2/4)(1/w + 1/4) + w''/2; the
// slice is free of butterfly arbitrage where g >= 0 (NaN where w <= 0).
void svi_density(const SviParams& p, In<double> k, std::size_t n, double* g, int threads = 0);

// Lognormal implied vol of a SABR model per (forward, strike, expiry) row.
void sabr_vol(const SabrParams& p, In<double> forward, In<double> strike, In<double> expiry,
              std::size_t n, double* vol, int threads = 0);

enum class SliceModel : int { Svi = 0, Sabr = 1 };

// A fitted surface: one parameter row per expiry (SVI: a, b, rho, m, sigma; SABR: alpha, beta,
// rho, nu), expiries strictly increasing and > 0, forwards > 0. Arrays are caller-owned.
struct SurfaceSpec {
  SliceModel model = SliceModel::Svi;
  const double* expiries = nullptr;
  const double* forwards = nullptr;
  const double* params = nullptr;  // row-major, n_slices x param_count(model)
  std::size_t n_slices = 0;
  double spot = 0.0;  // the forward at T = 0 when > 0; otherwise the first forward is held flat
};

std::size_t param_count(SliceModel model) noexcept;

// Checks the spec (sizes, ordering, every parameter row); throws std::invalid_argument.
void validate(const SurfaceSpec& s);

// Forward at T: ln F is linear in T between the pillars (0, spot) (when spot > 0) and
// (T_i, F_i); beyond the last pillar the last segment's carry continues (one pillar: flat).
double surface_forward(const SurfaceSpec& s, double t) noexcept;

// Total variance of slice i at log-moneyness k (NaN where the model gives none).
double slice_total_variance(const SurfaceSpec& s, std::size_t i, double k) noexcept;

// Implied vol at (K, T): k = ln(K / F(T)); total variance is linear in T at fixed k between
// expiries; before the first expiry it is linear from 0 at T = 0 (so the vol is the first
// slice's vol at that k, also at T = 0); after the last it continues with the last interval's
// forward variance floored at 0 (flat forward variance; with one slice, w_1(k) T / T_1, i.e. a
// flat vol). Validates the spec; NaN for rows with K <= 0, T < 0 or non-finite input.
void surface_vol(const SurfaceSpec& s, In<double> strike, In<double> expiry, std::size_t n,
                 double* vol, int threads = 0);

}  // namespace tradecore::pricing
