#pragma once
// Implied volatility of European options (Black-Scholes-Merton and Black-76), batch first.
//
// Every price strictly inside the no-arbitrage bounds gets the volatility to the accuracy double
// precision allows, down to prices of 1e-100 of the spot: the price is normalised to the Black
// form b(x, s) (x = ln(F/K), s = sigma sqrt T), in-the-money prices are reduced to
// out-of-the-money ones, and third-order Householder steps on a transformed objective start from
// closed-form guesses (see black_kernels.hpp). The CPU batch solves 256 rows at a time with every
// step vectorised across rows (implied_vol.cpp); rows it cannot finish take the scalar solver.
// Rows outside the bounds get NaN and a status code; the batch never throws per row.
#include <cstddef>
#include <cstdint>

#include "tradecore/common.hpp"
#include "tradecore/pricing/black_kernels.hpp"
#include "tradecore/pricing/european.hpp"

namespace tradecore::pricing {

struct ImpliedVolBatch {
  In<double> price, spot, strike, expiry, rate, dividend;
  In<std::int8_t> type;
  std::size_t n = 0;
  Model model = Model::Bsm;  // Black76: spot is the forward and dividend is not read
};

// How many rows ended in each ImpliedVolStatus.
struct ImpliedVolCounts {
  std::size_t ok = 0, below_intrinsic = 0, above_upper = 0, non_positive = 0, invalid_input = 0;
};

// Writes vol[i] (NaN unless status[i] == kIvOk) and status[i] for every row; `status` may be
// null. Uses up to `threads` threads (0: the runtime default). Throws std::invalid_argument
// only when `vol` is null and n > 0.
ImpliedVolCounts implied_vol(const ImpliedVolBatch& in, double* vol, std::int8_t* status,
                             int threads = 0);

// One option; returns the status and writes the vol (NaN unless kIvOk).
std::int8_t implied_vol_scalar(double price, double spot, double strike, double expiry, double rate,
                               double dividend, std::int8_t type, Model model,
                               double& vol) noexcept;

}  // namespace tradecore::pricing
