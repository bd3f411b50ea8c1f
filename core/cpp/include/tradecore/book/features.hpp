#pragma once
// Microstructure features kept incrementally as a book changes: spread, mid, microprice,
// depth imbalance over levels 1..N, order-flow imbalance (Cont, Kukanov & Stoikov 2014),
// VPIN over equal-volume buckets, trade-sign imbalance and realised volatility over windows.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tradecore/book/order_book.hpp"

namespace tradecore::book {

struct FeatureConfig {
  std::size_t depth = 5;           // levels 1..depth in the depth imbalance
  Qty vpin_bucket_volume = 1000;   // volume per VPIN bucket
  std::size_t vpin_buckets = 50;   // VPIN averages over the last this many full buckets
  std::size_t trade_window = 100;  // trades in the trade-sign imbalance
  std::size_t rv_window = 100;     // mid-price log returns in the realised volatility
};
void validate(const FeatureConfig& c);  // throws std::invalid_argument

inline constexpr std::size_t kFeatureCount = 8;
// Column order of feature outputs.
enum class Feature : std::uint8_t {
  Spread = 0,          // best ask - best bid (ticks); NaN when a side is empty
  Mid = 1,             // (bid + ask) / 2
  Microprice = 2,      // (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
  Imbalance = 3,       // (bid depth - ask depth) / (bid depth + ask depth) over levels 1..depth
  Ofi = 4,             // order-flow imbalance of the last book change (shares)
  Vpin = 5,            // mean |buy - sell| / bucket volume over the last full buckets
  TradeImbalance = 6,  // mean trade sign (+1 buyer-initiated) over the last trades
  RealizedVol = 7,     // sqrt(sum of squared log mid returns) over the last returns
};
const char* feature_name(Feature f) noexcept;

struct FeatureRow {
  double v[kFeatureCount];
};

class FeatureEngine {
 public:
  explicit FeatureEngine(const FeatureConfig& config = {});
  // A trade of `size` with sign +1 (buyer-initiated) or -1 (seller-initiated).
  void on_trade(int sign, Qty size) noexcept;
  // Book state after a change; updates spread, mid, microprice, imbalance, OFI and returns.
  void on_book(const OrderBook& book) noexcept;
  // Trade events in `events` (taker side gives the sign), then the book state.
  void update(const OrderBook& book, const Event* events, std::size_t n) noexcept;
  [[nodiscard]] const FeatureRow& current() const noexcept { return row_; }
  [[nodiscard]] const FeatureConfig& config() const noexcept { return cfg_; }
  void reset() noexcept;

 private:
  FeatureConfig cfg_;
  FeatureRow row_{};
  bool have_prev_ = false;
  Price pb_ = 0, pa_ = 0;
  Qty qb_ = 0, qa_ = 0;
  bool hb_ = false, ha_ = false;
  double last_mid_ = 0.0;
  // VPIN
  Qty bucket_buy_ = 0, bucket_sell_ = 0;
  std::vector<double> bucket_imb_;
  std::size_t bucket_pos_ = 0, bucket_n_ = 0;
  double bucket_sum_ = 0.0;
  // trade signs
  std::vector<std::int8_t> signs_;
  std::size_t sign_pos_ = 0, sign_n_ = 0;
  std::int64_t sign_sum_ = 0;
  // returns
  std::vector<double> r2_;
  std::size_t r2_pos_ = 0, r2_n_ = 0;
  double r2_sum_ = 0.0;
  std::vector<Qty> scratch_;
};

}  // namespace tradecore::book
