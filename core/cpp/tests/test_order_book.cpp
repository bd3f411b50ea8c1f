// The L3 order book: price-time priority, partial fills, order types, cancel/reduce/replace,
// anonymous level quantity, and the invariants after each step.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "tradecore/book/order_book.hpp"

using namespace tradecore::book;

namespace {

std::vector<Event> of_type(const OrderBook& b, EventType t) {
  std::vector<Event> out;
  for (const Event& e : b.events())
    if (e.type == t) out.push_back(e);
  return out;
}

}  // namespace

TEST(price_time_priority_and_partial_fills) {
  OrderBook b;
  b.submit(1, Side::Sell, OrderType::Limit, 101, 5, 1);
  b.submit(2, Side::Sell, OrderType::Limit, 100, 3, 2);
  b.submit(3, Side::Sell, OrderType::Limit, 100, 4, 3);  // behind 2 at the same price
  CHECK(b.check_invariants().empty());
  Price p = 0;
  Qty q = 0;
  CHECK(b.best(Side::Sell, p, q) && p == 100 && q == 7);
  CHECK(!b.best(Side::Buy, p, q));
  b.clear_events();
  b.submit(10, Side::Buy, OrderType::Limit, 101, 9, 4);  // takes 2 (3), 3 (4), 1 (2 of 5)
  const auto trades = of_type(b, EventType::Trade);
  CHECK(trades.size() == 3);
  if (trades.size() == 3) {
    CHECK(trades[0].other_id == 2 && trades[0].size == 3 && trades[0].price == 100);
    CHECK(trades[1].other_id == 3 && trades[1].size == 4 && trades[1].price == 100);
    CHECK(trades[2].other_id == 1 && trades[2].size == 2 && trades[2].price == 101);
    CHECK(trades[0].order_id == 10);
  }
  CHECK(b.best(Side::Sell, p, q) && p == 101 && q == 3);
  CHECK(!b.best(Side::Buy, p, q));  // the buy filled completely: nothing rests
  CHECK(b.order_count() == 1);
  CHECK(b.check_invariants().empty());
}

TEST(a_limit_order_rests_what_it_does_not_fill) {
  OrderBook b;
  b.submit(1, Side::Sell, OrderType::Limit, 100, 2, 1);
  b.submit(2, Side::Buy, OrderType::Limit, 100, 5, 2);
  Price p = 0;
  Qty q = 0;
  CHECK(b.best(Side::Buy, p, q) && p == 100 && q == 3);
  CHECK(!b.best(Side::Sell, p, q));
  OrderInfo info;
  CHECK(b.find(2, info) && info.size == 3 && info.side == Side::Buy && info.price == 100);
  CHECK(!b.find(1, info));
}

TEST(order_types_reject_or_cancel_as_documented) {
  OrderBook b;
  b.submit(1, Side::Sell, OrderType::Limit, 100, 5, 1);
  b.clear_events();
  b.submit(2, Side::Buy, OrderType::PostOnly, 100, 1, 2);  // would take liquidity
  auto rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::WouldCross);
  b.clear_events();
  b.submit(3, Side::Buy, OrderType::Fok, 100, 6, 3);  // only 5 available
  rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::NotFillable);
  CHECK(b.level_size(Side::Sell, 100) == 5);  // a rejected FOK takes nothing
  b.clear_events();
  b.submit(4, Side::Buy, OrderType::Ioc, 100, 7, 4);  // fills 5, the rest is cancelled
  CHECK(of_type(b, EventType::Trade).size() == 1);
  const auto cancelled = of_type(b, EventType::Cancelled);
  CHECK(cancelled.size() == 1 && cancelled[0].size == 2);
  CHECK(b.order_count() == 0);
  b.clear_events();
  b.submit(5, Side::Buy, OrderType::Market, 0, 1, 5);
  rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::NoLiquidity);
  b.clear_events();
  b.submit(6, Side::Buy, OrderType::Limit, 99, 0, 6);
  rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::InvalidSize);
  b.submit(7, Side::Buy, OrderType::Limit, 99, 1, 7);
  b.clear_events();
  b.submit(7, Side::Buy, OrderType::Limit, 98, 1, 8);
  rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::DuplicateId);
  CHECK(b.check_invariants().empty());
}

TEST(cancel_reduce_and_replace) {
  OrderBook b;
  b.submit(1, Side::Buy, OrderType::Limit, 100, 5, 1);
  b.submit(2, Side::Buy, OrderType::Limit, 100, 5, 2);
  b.reduce(1, 2, 3);  // keeps its place ahead of 2
  CHECK(b.level_size(Side::Buy, 100) == 8);
  b.submit(3, Side::Sell, OrderType::Limit, 100, 3, 4);
  auto trades = of_type(b, EventType::Trade);
  CHECK(!trades.empty() && trades.back().other_id == 1 && trades.back().size == 3);
  CHECK(b.order_count() == 1);  // 1 filled, 2 left
  b.replace(2, 100, 9, 5);      // a size increase re-enters at the back
  OrderInfo info;
  CHECK(b.find(2, info) && info.size == 9 && info.ts == 5);
  b.cancel(2, 6);
  CHECK(b.order_count() == 0 && b.level_count(Side::Buy) == 0);
  b.clear_events();
  b.cancel(2, 7);
  const auto rej = of_type(b, EventType::Rejected);
  CHECK(rej.size() == 1 && rej[0].reason == RejectReason::UnknownOrder);
  CHECK(b.check_invariants().empty());
}

TEST(anonymous_quantity_trades_first_and_crossing_is_refused) {
  OrderBook b;
  b.submit(1, Side::Sell, OrderType::Limit, 100, 4, 1);
  CHECK(b.add_level_size(Side::Sell, 100, 3) == 7);
  b.clear_events();
  b.submit(2, Side::Buy, OrderType::Limit, 100, 5, 2);
  const auto trades = of_type(b, EventType::Trade);
  CHECK(trades.size() == 2);
  if (trades.size() == 2) {
    CHECK(trades[0].other_id == 0 && trades[0].size == 3);  // anonymous quantity leads
    CHECK(trades[1].other_id == 1 && trades[1].size == 2);
  }
  CHECK_THROWS(std::invalid_argument, b.add_level_size(Side::Buy, 100, 1));  // crosses 100
  CHECK_THROWS(std::invalid_argument, b.add_level_size(Side::Buy, 99, 0));
  CHECK(!b.insert(9, Side::Buy, 100, 1, 3));  // insert never crosses either
  CHECK(b.remove_level_size(Side::Sell, 100, 10) == 2);
  CHECK(b.level_count(Side::Sell) == 0 && b.order_count() == 0);
  CHECK(b.check_invariants().empty());
}

TEST(levels_and_snapshot_list_the_inside_first) {
  OrderBook b;
  for (int i = 0; i < 5; ++i) {
    b.submit(OrderId(1 + i), Side::Buy, OrderType::Limit, 100 - i, 10 + i, i);
    b.submit(OrderId(100 + i), Side::Sell, OrderType::Limit, 101 + i, 20 + i, i);
  }
  Price px[3];
  Qty sz[3];
  CHECK(b.levels(Side::Buy, 3, px, sz) == 3);
  CHECK(px[0] == 100 && px[1] == 99 && px[2] == 98 && sz[0] == 10 && sz[2] == 12);
  Price bp[8], ap[8];
  Qty bs[8], as[8];
  std::size_t bn = 0, an = 0;
  b.snapshot(8, bp, bs, ap, as, bn, an);
  CHECK(bn == 5 && an == 5);
  CHECK(ap[0] == 101 && ap[4] == 105 && bp[5] == 0 && bs[7] == 0);
}

TEST(many_orders_keep_the_index_consistent) {
  // Enough ids to grow the open-addressing index several times, cancelled out of order.
  OrderBook b(4);
  const int n = 5000;
  for (int i = 0; i < n; ++i)
    b.submit(OrderId(i * 7919 + 1), Side::Buy, OrderType::Limit, 1000 - (i % 50), 1, i);
  CHECK(b.order_count() == std::size_t(n));
  for (int i = 0; i < n; i += 2) b.cancel(OrderId(i * 7919 + 1), n + i);
  CHECK(b.order_count() == std::size_t(n / 2));
  OrderInfo info;
  CHECK(b.find(OrderId(1 * 7919 + 1), info) && !b.find(OrderId(0 * 7919 + 1), info));
  CHECK(b.check_invariants().empty());
}

TEST(level_queue_lists_a_level_front_first_after_anonymous_quantity) {
  OrderBook b;
  OrderId ids[4] = {};
  Qty sizes[4] = {};
  Qty anon = -1;
  CHECK(b.level_queue(Side::Buy, 100, 4, ids, sizes, anon) == 0 && anon == 0);
  b.add_level_size(Side::Buy, 100, 7);
  b.submit(1, Side::Buy, OrderType::Limit, 100, 3, 1);
  b.submit(2, Side::Buy, OrderType::Limit, 100, 4, 2);
  b.submit(3, Side::Buy, OrderType::Limit, 100, 5, 3);
  b.submit(9, Side::Buy, OrderType::Limit, 99, 5, 4);  // another level
  b.reduce(2, 1, 5);                                   // keeps its place
  CHECK(b.level_queue(Side::Buy, 100, 4, ids, sizes, anon) == 3 && anon == 7);
  CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
  CHECK(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 5);
  b.replace(1, 100, 6, 6);  // a size increase goes to the back
  CHECK(b.level_queue(Side::Buy, 100, 2, ids, sizes, anon) == 3);  // only n are written
  CHECK(ids[0] == 2 && ids[1] == 3);
  CHECK(b.level_queue(Side::Buy, 100, 0, nullptr, nullptr, anon) == 3 && anon == 7);
  CHECK(b.level_queue(Side::Sell, 100, 4, ids, sizes, anon) == 0 && anon == 0);
}

TEST(checked_codes) {
  CHECK(to_side(1) == Side::Buy && to_side(-1) == Side::Sell);
  CHECK_THROWS(std::invalid_argument, to_side(0));
  CHECK(to_order_type(4) == OrderType::PostOnly);
  CHECK_THROWS(std::invalid_argument, to_order_type(5));
  CHECK_THROWS(std::invalid_argument, to_order_type(-1));
  const std::uint8_t kind[] = {0, 9};
  const std::uint64_t id[] = {1, 2};
  const std::int8_t side[] = {1, 1};
  const Price price[] = {100, 100};
  const Qty size[] = {1, 1};
  const Timestamp ts[] = {0, 0};
  OrderBook b;
  CHECK_THROWS(std::invalid_argument, b.apply(OpBatch{2, kind, id, side, price, size, ts}));
  CHECK(b.order_count() == 0);  // nothing of a refused batch is applied
}

TEST_MAIN()
