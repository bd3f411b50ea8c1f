#include "tradecore/book/order_book.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace tradecore::book {

namespace {
constexpr Side opposite(Side s) noexcept { return s == Side::Buy ? Side::Sell : Side::Buy; }
}  // namespace

const char* reject_reason_name(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::None:
      return "none";
    case RejectReason::InvalidSize:
      return "invalid_size";
    case RejectReason::DuplicateId:
      return "duplicate_id";
    case RejectReason::UnknownOrder:
      return "unknown_order";
    case RejectReason::WouldCross:
      return "would_cross";
    case RejectReason::NotFillable:
      return "not_fillable";
    case RejectReason::NoLiquidity:
      return "no_liquidity";
  }
  return "?";
}

Side to_side(int code) {
  if (code == 1) return Side::Buy;
  if (code == -1) return Side::Sell;
  throw std::invalid_argument("side must be +1 (buy) or -1 (sell), got " + std::to_string(code));
}

OrderType to_order_type(int code) {
  if (code < 0 || code > 4)
    throw std::invalid_argument(
        "order type must be 0..4 (limit, market, ioc, fok, post_only), got " +
        std::to_string(code));
  return static_cast<OrderType>(code);
}

// ------------------------------------------------------------------ IdIndex

OrderBook::IdIndex::IdIndex(std::size_t expected) {
  std::size_t cap = 16;
  while (cap < expected * 2) cap <<= 1;
  cells_.assign(cap, Cell{0, kNil});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
}

std::size_t OrderBook::IdIndex::home(OrderId id) const noexcept {
  return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
}

std::uint32_t OrderBook::IdIndex::get(OrderId id) const noexcept {
  for (std::size_t i = home(id);; i = (i + 1) & mask_) {
    const Cell& c = cells_[i];
    if (c.val == kNil) return kNil;
    if (c.key == id) return c.val;
  }
}

void OrderBook::IdIndex::put(OrderId id, std::uint32_t v) {
  if ((size_ + 1) * 2 > cells_.size()) grow();
  for (std::size_t i = home(id);; i = (i + 1) & mask_) {
    Cell& c = cells_[i];
    if (c.val == kNil) {
      c = Cell{id, v};
      ++size_;
      return;
    }
    if (c.key == id) {
      c.val = v;
      return;
    }
  }
}

void OrderBook::IdIndex::erase(OrderId id) noexcept {
  std::size_t i = home(id);
  for (;; i = (i + 1) & mask_) {
    if (cells_[i].val == kNil) return;
    if (cells_[i].key == id) break;
  }
  // Backward-shift deletion: pull later cells of the probe run into the hole.
  std::size_t hole = i;
  for (std::size_t j = (hole + 1) & mask_; cells_[j].val != kNil; j = (j + 1) & mask_) {
    const std::size_t h = home(cells_[j].key);
    // Move j into the hole when its home is not cyclically within (hole, j].
    const bool keep = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
    if (!keep) {
      cells_[hole] = cells_[j];
      hole = j;
    }
  }
  cells_[hole].val = kNil;
  --size_;
}

void OrderBook::IdIndex::grow() {
  std::vector<Cell> old;
  old.swap(cells_);
  const std::size_t cap = old.size() * 2;
  cells_.assign(cap, Cell{0, kNil});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  size_ = 0;
  for (const Cell& c : old)
    if (c.val != kNil) put(c.key, c.val);
}

void OrderBook::IdIndex::clear() noexcept {
  std::fill(cells_.begin(), cells_.end(), Cell{0, kNil});
  size_ = 0;
}

// ------------------------------------------------------------------ OrderBook internals

OrderBook::OrderBook(std::size_t expected_orders) : index_(expected_orders) {
  nodes_.reserve(expected_orders);
  levels_.reserve(256);
  bids_.reserve(256);
  asks_.reserve(256);
  events_.reserve(64);
}

void OrderBook::clear() noexcept {
  nodes_.clear();
  free_nodes_.clear();
  levels_.clear();
  free_levels_.clear();
  bids_.clear();
  asks_.clear();
  index_.clear();
  events_.clear();
}

void OrderBook::emit(EventType t, Timestamp ts, OrderId id, OrderId other, Price price, Qty size,
                     Side side, RejectReason r) {
  if (!record_) return;
  events_.push_back(Event{ts, id, other, price, size, t, side, r, {}});
}

std::uint32_t OrderBook::find_level(Side s, Price p) const noexcept {
  const auto& lad = ladder(s);
  const std::int64_t key = key_of(s, p);
  // Activity concentrates at the inside (the back): probe a few slots before bisecting.
  const std::size_t n = lad.size();
  const std::size_t probe = n < 8 ? n : 8;
  for (std::size_t k = 1; k <= probe; ++k) {
    const Slot& sl = lad[n - k];
    if (sl.key == key) return sl.level;
    if (sl.key < key) return kNil;
  }
  if (n <= 8) return kNil;
  auto it = std::lower_bound(lad.begin(), lad.end() - 8, key,
                             [](const Slot& a, std::int64_t k) { return a.key < k; });
  return (it != lad.end() - 8 && it->key == key) ? it->level : kNil;
}

std::uint32_t OrderBook::level_for(Side s, Price p) {
  auto& lad = ladder(s);
  const std::int64_t key = key_of(s, p);
  const std::size_t n = lad.size();
  std::size_t k = 0;  // slots at the back with a key above `key` (better prices)
  while (k < n && k < 8 && lad[n - 1 - k].key > key) ++k;
  std::vector<Slot>::iterator pos;  // insertion point: first slot with a key above `key`
  if (k < n && k < 8) {
    if (lad[n - 1 - k].key == key) return lad[n - 1 - k].level;
    pos = lad.end() - static_cast<std::ptrdiff_t>(k);
  } else if (k == n) {
    pos = lad.begin();
  } else {
    pos = std::upper_bound(lad.begin(), lad.end() - 8, key,
                           [](std::int64_t kk, const Slot& a) { return kk < a.key; });
    if (pos != lad.begin() && (pos - 1)->key == key) return (pos - 1)->level;
  }
  std::uint32_t lvl;
  if (!free_levels_.empty()) {
    lvl = free_levels_.back();
    free_levels_.pop_back();
  } else {
    lvl = static_cast<std::uint32_t>(levels_.size());
    levels_.emplace_back();
  }
  levels_[lvl] = Level{p, 0, 0, 0, kNil, kNil};
  lad.insert(pos, Slot{key, lvl});
  return lvl;
}

void OrderBook::drop_level(Side s, std::uint32_t lvl) {
  auto& lad = ladder(s);
  const std::int64_t key = key_of(s, levels_[lvl].price);
  if (!lad.empty() && lad.back().level == lvl) {
    lad.pop_back();
  } else {
    auto it = std::lower_bound(lad.begin(), lad.end(), key,
                               [](const Slot& a, std::int64_t k) { return a.key < k; });
    lad.erase(it);
  }
  free_levels_.push_back(lvl);
}

std::uint32_t OrderBook::new_node() {
  if (!free_nodes_.empty()) {
    const std::uint32_t n = free_nodes_.back();
    free_nodes_.pop_back();
    return n;
  }
  nodes_.emplace_back();
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

void OrderBook::unlink(std::uint32_t n) noexcept {
  Node& o = nodes_[n];
  Level& l = levels_[o.level];
  if (o.prev != kNil)
    nodes_[o.prev].next = o.next;
  else
    l.head = o.next;
  if (o.next != kNil)
    nodes_[o.next].prev = o.prev;
  else
    l.tail = o.prev;
  --l.count;
}

void OrderBook::rest(OrderId id, Side side, Price price, Qty qty, Timestamp ts) {
  const std::uint32_t lvl = level_for(side, price);
  const std::uint32_t n = new_node();
  Level& l = levels_[lvl];
  nodes_[n] = Node{id, qty, ts, lvl, l.tail, kNil, side};
  if (l.tail != kNil)
    nodes_[l.tail].next = n;
  else
    l.head = n;
  l.tail = n;
  ++l.count;
  l.total += qty;
  index_.put(id, n);
  level_event(side, l, ts);
}

Qty OrderBook::take(std::uint32_t n, Qty qty, Timestamp ts) {
  Node& o = nodes_[n];
  const Qty t = qty < o.qty ? qty : o.qty;
  const std::uint32_t lvl = o.level;
  const Side side = o.side;
  o.qty -= t;
  Level& l = levels_[lvl];
  l.total -= t;
  if (o.qty == 0) {
    unlink(n);
    index_.erase(o.id);
    free_nodes_.push_back(n);
  }
  level_event(side, l, ts);
  if (l.total == 0 && l.count == 0) drop_level(side, lvl);
  return t;
}

bool OrderBook::crosses(Side side, Price price) const noexcept {
  const auto& opp = ladder(opposite(side));
  if (opp.empty()) return false;
  const Price best = levels_[opp.back().level].price;
  return side == Side::Buy ? best <= price : best >= price;
}

Qty OrderBook::available(Side side, bool limited, Price limit, Qty need) const noexcept {
  const auto& opp = ladder(opposite(side));
  Qty sum = 0;
  for (auto it = opp.rbegin(); it != opp.rend() && sum < need; ++it) {
    const Level& l = levels_[it->level];
    if (limited && (side == Side::Buy ? l.price > limit : l.price < limit)) break;
    sum += l.total;
  }
  return sum;
}

Qty OrderBook::match(OrderId taker, Side side, bool limited, Price limit, Qty qty, Timestamp ts) {
  const Side os = opposite(side);
  auto& opp = ladder(os);
  while (qty > 0 && !opp.empty()) {
    const std::uint32_t lvl = opp.back().level;
    Level& l = levels_[lvl];
    if (limited && (side == Side::Buy ? l.price > limit : l.price < limit)) break;
    if (l.anon > 0) {
      const Qty f = qty < l.anon ? qty : l.anon;
      l.anon -= f;
      l.total -= f;
      qty -= f;
      emit(EventType::Trade, ts, taker, 0, l.price, f, side);
    }
    std::uint32_t n = l.head;
    while (qty > 0 && n != kNil) {
      Node& o = nodes_[n];
      const std::uint32_t next = o.next;
      const Qty f = qty < o.qty ? qty : o.qty;
      o.qty -= f;
      l.total -= f;
      qty -= f;
      emit(EventType::Trade, ts, taker, o.id, l.price, f, side);
      if (o.qty == 0) {
        unlink(n);
        index_.erase(o.id);
        free_nodes_.push_back(n);
      }
      n = next;
    }
    level_event(os, l, ts);
    if (l.total == 0) {
      opp.pop_back();
      free_levels_.push_back(lvl);
    }
  }
  return qty;
}

// ------------------------------------------------------------------ order entry

void OrderBook::submit(OrderId id, Side side, OrderType type, Price price, Qty size, Timestamp ts) {
  auto reject = [&](RejectReason r) { emit(EventType::Rejected, ts, id, 0, price, size, side, r); };
  if (size <= 0) return reject(RejectReason::InvalidSize);
  if (index_.get(id) != kNil) return reject(RejectReason::DuplicateId);
  const bool limited = type != OrderType::Market;
  switch (type) {
    case OrderType::PostOnly:
      if (crosses(side, price)) return reject(RejectReason::WouldCross);
      break;
    case OrderType::Fok:
      if (available(side, true, price, size) < size) return reject(RejectReason::NotFillable);
      break;
    case OrderType::Market:
      if (ladder(opposite(side)).empty()) return reject(RejectReason::NoLiquidity);
      break;
    default:
      break;
  }
  emit(EventType::Accepted, ts, id, 0, limited ? price : 0, size, side);
  const Qty left = match(id, side, limited, price, size, ts);
  if (left == 0) return;
  if (type == OrderType::Limit || type == OrderType::PostOnly) {
    rest(id, side, price, left, ts);
  } else {
    emit(EventType::Cancelled, ts, id, 0, limited ? price : 0, left, side);
  }
}

void OrderBook::cancel(OrderId id, Timestamp ts) {
  const std::uint32_t n = index_.get(id);
  if (n == kNil)
    return emit(EventType::Rejected, ts, id, 0, 0, 0, Side::Buy, RejectReason::UnknownOrder);
  const Node o = nodes_[n];
  emit(EventType::Cancelled, ts, id, 0, levels_[o.level].price, o.qty, o.side);
  take(n, o.qty, ts);
}

void OrderBook::reduce(OrderId id, Qty by, Timestamp ts) {
  const std::uint32_t n = index_.get(id);
  if (n == kNil)
    return emit(EventType::Rejected, ts, id, 0, 0, by, Side::Buy, RejectReason::UnknownOrder);
  const Node o = nodes_[n];
  const Price price = levels_[o.level].price;
  if (by <= 0)
    return emit(EventType::Rejected, ts, id, 0, price, by, o.side, RejectReason::InvalidSize);
  if (by >= o.qty) return cancel(id, ts);
  emit(EventType::Modified, ts, id, 0, price, o.qty - by, o.side);
  take(n, by, ts);
}

void OrderBook::replace(OrderId id, Price new_price, Qty new_size, Timestamp ts) {
  const std::uint32_t n = index_.get(id);
  if (n == kNil)
    return emit(EventType::Rejected, ts, id, 0, new_price, new_size, Side::Buy,
                RejectReason::UnknownOrder);
  const Node o = nodes_[n];
  const Price price = levels_[o.level].price;
  if (new_size <= 0)
    return emit(EventType::Rejected, ts, id, 0, new_price, new_size, o.side,
                RejectReason::InvalidSize);
  if (new_price == price && new_size <= o.qty) {
    if (new_size == o.qty) return emit(EventType::Modified, ts, id, 0, price, new_size, o.side);
    emit(EventType::Modified, ts, id, 0, price, new_size, o.side);
    take(n, o.qty - new_size, ts);
    return;
  }
  take(n, o.qty, ts);  // leaves the queue: priority is lost
  emit(EventType::Modified, ts, id, 0, new_price, new_size, o.side);
  const Qty left = match(id, o.side, true, new_price, new_size, ts);
  if (left > 0) rest(id, o.side, new_price, left, ts);
}

bool OrderBook::insert(OrderId id, Side side, Price price, Qty size, Timestamp ts) {
  if (size <= 0 || index_.get(id) != kNil || crosses(side, price)) return false;
  rest(id, side, price, size, ts);
  return true;
}

Qty OrderBook::execute(OrderId id, Qty qty, Timestamp ts) {
  const std::uint32_t n = index_.get(id);
  if (n == kNil || qty <= 0) return 0;
  return take(n, qty, ts);
}

Qty OrderBook::add_level_size(Side side, Price price, Qty qty, Timestamp ts) {
  if (qty <= 0) throw std::invalid_argument("add_level_size: qty must be > 0");
  if (crosses(side, price))
    throw std::invalid_argument("add_level_size: price " + std::to_string(price) +
                                " would cross the opposite side");
  Level& l = levels_[level_for(side, price)];
  l.anon += qty;
  l.total += qty;
  level_event(side, l, ts);
  return l.total;
}

Qty OrderBook::remove_level_size(Side side, Price price, Qty qty, Timestamp ts) {
  if (qty <= 0) throw std::invalid_argument("remove_level_size: qty must be > 0");
  const std::uint32_t lvl = find_level(side, price);
  if (lvl == kNil) return 0;
  Level& l = levels_[lvl];
  Qty removed = qty < l.anon ? qty : l.anon;
  l.anon -= removed;
  l.total -= removed;
  while (removed < qty && l.tail != kNil) {
    const std::uint32_t n = l.tail;
    Node& o = nodes_[n];
    const Qty t = qty - removed < o.qty ? qty - removed : o.qty;
    o.qty -= t;
    l.total -= t;
    removed += t;
    if (o.qty == 0) {
      unlink(n);
      index_.erase(o.id);
      free_nodes_.push_back(n);
    }
  }
  level_event(side, l, ts);
  if (l.total == 0) drop_level(side, lvl);
  return removed;
}

void OrderBook::apply(const OpBatch& ops) {
  for (std::size_t i = 0; i < ops.n; ++i) {
    const std::uint8_t k = ops.kind[i];
    if (k > static_cast<std::uint8_t>(OpKind::Replace))
      throw std::invalid_argument("kind[" + std::to_string(i) + "] must be 0..7, got " +
                                  std::to_string(k));
    if (k <= static_cast<std::uint8_t>(OpKind::PostOnly) && ops.side[i] != 1 && ops.side[i] != -1)
      throw std::invalid_argument("side[" + std::to_string(i) + "] must be +1 or -1, got " +
                                  std::to_string(ops.side[i]));
  }
  for (std::size_t i = 0; i < ops.n; ++i) {
    const auto k = static_cast<OpKind>(ops.kind[i]);
    switch (k) {
      case OpKind::Cancel:
        cancel(ops.id[i], ops.ts[i]);
        break;
      case OpKind::Reduce:
        reduce(ops.id[i], ops.size[i], ops.ts[i]);
        break;
      case OpKind::Replace:
        replace(ops.id[i], ops.price[i], ops.size[i], ops.ts[i]);
        break;
      default:
        submit(ops.id[i], ops.side[i] > 0 ? Side::Buy : Side::Sell, static_cast<OrderType>(k),
               ops.price[i], ops.size[i], ops.ts[i]);
    }
  }
}

// ------------------------------------------------------------------ views

bool OrderBook::best(Side side, Price& price, Qty& size) const noexcept {
  const auto& lad = ladder(side);
  if (lad.empty()) return false;
  const Level& l = levels_[lad.back().level];
  price = l.price;
  size = l.total;
  return true;
}

std::size_t OrderBook::level_count(Side side) const noexcept { return ladder(side).size(); }

Qty OrderBook::level_size(Side side, Price price) const noexcept {
  const std::uint32_t lvl = find_level(side, price);
  return lvl == kNil ? 0 : levels_[lvl].total;
}

std::size_t OrderBook::levels(Side side, std::size_t n, Price* prices, Qty* sizes,
                              std::uint32_t* orders) const noexcept {
  const auto& lad = ladder(side);
  const std::size_t m = n < lad.size() ? n : lad.size();
  for (std::size_t k = 0; k < m; ++k) {
    const Level& l = levels_[lad[lad.size() - 1 - k].level];
    if (prices) prices[k] = l.price;
    if (sizes) sizes[k] = l.total;
    if (orders) orders[k] = l.count;
  }
  return m;
}

void OrderBook::snapshot(std::size_t n, Price* bid_px, Qty* bid_sz, Price* ask_px, Qty* ask_sz,
                         std::size_t& bid_n, std::size_t& ask_n) const noexcept {
  bid_n = levels(Side::Buy, n, bid_px, bid_sz);
  ask_n = levels(Side::Sell, n, ask_px, ask_sz);
  for (std::size_t k = bid_n; k < n; ++k) bid_px[k] = bid_sz[k] = 0;
  for (std::size_t k = ask_n; k < n; ++k) ask_px[k] = ask_sz[k] = 0;
}

std::size_t OrderBook::level_queue(Side side, Price price, std::size_t n, OrderId* ids, Qty* sizes,
                                   Qty& anon) const noexcept {
  anon = 0;
  const std::uint32_t lvl = find_level(side, price);
  if (lvl == kNil) return 0;
  const Level& l = levels_[lvl];
  anon = l.anon;
  std::size_t k = 0;
  for (std::uint32_t x = l.head; x != kNil && k < n; x = nodes_[x].next, ++k) {
    if (ids) ids[k] = nodes_[x].id;
    if (sizes) sizes[k] = nodes_[x].qty;
  }
  return l.count;
}

bool OrderBook::find(OrderId id, OrderInfo& out) const noexcept {
  const std::uint32_t n = index_.get(id);
  if (n == kNil) return false;
  const Node& o = nodes_[n];
  out = OrderInfo{o.id, o.side, levels_[o.level].price, o.qty, o.ts};
  return true;
}

std::string OrderBook::check_invariants() const {
  std::size_t orders = 0;
  for (Side s : {Side::Buy, Side::Sell}) {
    const auto& lad = ladder(s);
    for (std::size_t k = 0; k < lad.size(); ++k) {
      const Level& l = levels_[lad[k].level];
      if (lad[k].key != key_of(s, l.price)) return "slot key does not match level price";
      if (k > 0 && !(lad[k - 1].key < lad[k].key)) return "levels not strictly sorted";
      if (l.total <= 0 || l.anon < 0) return "non-positive level total or negative anonymous size";
      Qty sum = l.anon;
      std::uint32_t count = 0;
      for (std::uint32_t n = l.head; n != kNil; n = nodes_[n].next) {
        const Node& o = nodes_[n];
        if (o.qty <= 0) return "non-positive order size";
        if (o.level != lad[k].level || o.side != s) return "order linked into the wrong level";
        if (index_.get(o.id) != n) return "order missing from the id index";
        sum += o.qty;
        ++count;
      }
      if (sum != l.total) return "level total differs from the sum of its orders";
      if (count != l.count) return "level order count is wrong";
      orders += count;
    }
  }
  if (orders != index_.size()) return "id index size differs from the resting orders";
  if (!bids_.empty() && !asks_.empty() &&
      levels_[bids_.back().level].price >= levels_[asks_.back().level].price)
    return "book is crossed";
  return {};
}

}  // namespace tradecore::book
