#pragma once
// Synthetic order flow for one instrument, realistic enough to exercise everything downstream:
// order-entry operations arrive as a Poisson process in exchange time (post-only adds at a
// geometric number of ticks from the mid, cancels that favour orders far from the mid and
// grow with the book's depth, market orders whose side follows a slowly wandering order-flow
// pressure, so the mid trends and turns), are matched by an
// OrderBook, and what the book did is written out as LOBSTER-style messages: 1 add, 3 delete,
// 4 execution of a resting order (with the resting order's side).
//
// Deterministic: the same (seed, stream) and config give the same messages on any machine
// with IEEE doubles (the generator and its distributions are defined here, not by <random>).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tradecore/book/order_book.hpp"

namespace tradecore::book {

// LOBSTER message types the flow writes.
inline constexpr std::uint8_t kMsgAdd = 1;
inline constexpr std::uint8_t kMsgDelete = 3;
inline constexpr std::uint8_t kMsgExecute = 4;

struct SyntheticConfig {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;  // a second key (e.g. a hash of the symbol): independent flows
  double rate = 1e4;         // mean order-entry operations per second of exchange time
  Timestamp start_ns = 0;    // exchange time before the first operation
  Price mid = 1'000'000;     // initial mid (price units; 1'000'000 = $100.00)
  Price tick = 100;          // price increment (100 = one cent)
  double drift = 0.02;       // sd of the pressure's random-walk step (one step per 512 ops)
};

// Messages as columns (structure of arrays); next() clears and refills them.
struct SyntheticMessages {
  std::vector<Timestamp> ts;
  std::vector<std::uint8_t> type;
  std::vector<OrderId> order_id;
  std::vector<std::int8_t> side;
  std::vector<Price> price;
  std::vector<Qty> size;
  [[nodiscard]] std::size_t count() const noexcept { return ts.size(); }
  void clear() noexcept;
  void push(Timestamp t, std::uint8_t k, OrderId id, Side s, Price p, Qty q);
};

class SyntheticFlow {
 public:
  // The flow drives `book` (which must outlive it and should start empty); throws
  // std::invalid_argument for a rate that is not finite and > 0, a tick <= 0 or a mid <= 0.
  SyntheticFlow(OrderBook& book, const SyntheticConfig& cfg);

  // Runs `ops` operations and returns the messages they produced (valid until the next call).
  const SyntheticMessages& next(std::size_t ops);

  [[nodiscard]] std::uint64_t operations() const noexcept { return ops_; }
  [[nodiscard]] double exchange_time() const noexcept { return t_; }
  [[nodiscard]] double pressure() const noexcept { return pressure_; }

  // Warm-up: the first kWarmupOps operations are adds, so the book has depth to trade against.
  static constexpr std::uint64_t kWarmupOps = 400;
  // A cancel draws up to this many resting orders and takes the first one more than
  // kFarTicks from the mid (else the last drawn): the book stays concentrated at the touch.
  static constexpr int kCancelDraws = 8;
  static constexpr int kFarTicks = 4;
  static constexpr std::uint64_t kPressureEvery = 512;
  // Cancels take 40 % x n / (n + kDepthScale) of the operations when n orders rest: the
  // book settles at ≈ 250 resting orders over ≈ 10 levels a side.
  static constexpr double kDepthScale = 50.0;

 private:
  std::uint64_t next_u64() noexcept;
  double uniform() noexcept;                      // [0, 1)
  std::uint64_t below(std::uint64_t n) noexcept;  // [0, n)
  double normal() noexcept;
  void add(Timestamp ts);
  void cancel(Timestamp ts);
  void market(Timestamp ts);
  void compact();

  OrderBook& book_;
  SyntheticConfig cfg_;
  std::uint64_t s_[4];
  double t_;
  double mid_;
  double pressure_ = 0.0;
  double gap_ns_;
  std::uint64_t ops_ = 0;
  OrderId next_id_ = 1;
  std::vector<OrderId> live_;  // ids that may still rest (filled makers leave lazily)
  SyntheticMessages out_;
};

}  // namespace tradecore::book
