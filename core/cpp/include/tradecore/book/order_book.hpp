#pragma once
// Order-by-order (L3) limit order book for one instrument: integer tick prices, int64 ns
// timestamps, price-time priority matching. No Python, no I/O, no global state.
//
// Layout: each side keeps its price levels in a sorted vector of (key, level) slots with the
// inside at the back (key = price for bids, -price for asks), so touching the inside is O(1)
// and inserting near it moves few slots. Levels and orders live in pools indexed by uint32;
// orders form an intrusive doubly linked FIFO per level; an open-addressing hash map gives
// O(1) id -> order lookup for cancel/reduce/replace.
//
// Events (accepted, rejected, trade, level changed, cancelled, modified) are appended to a
// buffer while an operation runs and read by the caller afterwards (events() / clear_events()).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tradecore::book {

using Price = std::int64_t;
using Qty = std::int64_t;
using OrderId = std::uint64_t;
using Timestamp = std::int64_t;

enum class Side : std::int8_t { Buy = 1, Sell = -1 };
enum class OrderType : std::uint8_t { Limit = 0, Market = 1, Ioc = 2, Fok = 3, PostOnly = 4 };
enum class EventType : std::uint8_t {
  Accepted = 0,      // order_id, side, price, size (as submitted)
  Rejected = 1,      // order_id, reason
  Trade = 2,         // order_id = taker, other_id = maker (0: quantity of unknown orders)
  LevelChanged = 3,  // side, price, size = new level total (0: level gone)
  Cancelled = 4,     // order_id, size = quantity removed (explicit cancel or IOC/market rest)
  Modified = 5,      // order_id, price, size = new resting quantity
};
enum class RejectReason : std::uint8_t {
  None = 0,
  InvalidSize = 1,   // size <= 0
  DuplicateId = 2,   // id already resting
  UnknownOrder = 3,  // cancel/reduce/replace of an id that is not resting
  WouldCross = 4,    // post-only order that would take liquidity
  NotFillable = 5,   // fill-or-kill order that cannot fill completely
  NoLiquidity = 6,   // market order with an empty opposite side
};

const char* reject_reason_name(RejectReason r) noexcept;

// One event; 48 bytes, laid out for a numpy structured dtype.
struct Event {
  Timestamp ts;
  OrderId order_id;
  OrderId other_id;
  Price price;
  Qty size;
  EventType type;
  Side side;
  RejectReason reason;
  std::uint8_t pad[5];
};

struct OrderInfo {
  OrderId id = 0;
  Side side = Side::Buy;
  Price price = 0;
  Qty size = 0;
  Timestamp ts = 0;
};

// Checked conversions from integer codes (throw std::invalid_argument).
Side to_side(int code);
OrderType to_order_type(int code);

// A batch of operations applied in order (structure of arrays, n rows).
enum class OpKind : std::uint8_t {
  Limit = 0,
  Market = 1,
  Ioc = 2,
  Fok = 3,
  PostOnly = 4,  // submit with this OrderType
  Cancel = 5,
  Reduce = 6,   // size = quantity to remove
  Replace = 7,  // new price and size
};
struct OpBatch {
  std::size_t n = 0;
  const std::uint8_t* kind = nullptr;
  const std::uint64_t* id = nullptr;
  const std::int8_t* side = nullptr;  // +1 buy, -1 sell (submits only)
  const Price* price = nullptr;
  const Qty* size = nullptr;
  const Timestamp* ts = nullptr;
};

class OrderBook {
 public:
  explicit OrderBook(std::size_t expected_orders = 1024);

  // ---- order entry (results and failures are reported as events, never thrown)
  void submit(OrderId id, Side side, OrderType type, Price price, Qty size, Timestamp ts);
  void cancel(OrderId id, Timestamp ts);
  // Removes `by` from a resting order keeping its time priority (by >= size cancels it).
  void reduce(OrderId id, Qty by, Timestamp ts);
  // New price and/or size. A pure size decrease keeps priority; anything else re-enters the
  // order at the back of its (new) level, matching first as a limit order would.
  void replace(OrderId id, Price new_price, Qty new_size, Timestamp ts);
  // Rests an order without matching (replays). False (and nothing changes) when the id is
  // resting already, the size is not positive or the price would cross the opposite side.
  bool insert(OrderId id, Side side, Price price, Qty size, Timestamp ts);
  // Removes up to `qty` from a resting order (execution reported by a feed). Returns the
  // quantity removed; 0 for an unknown id.
  Qty execute(OrderId id, Qty qty, Timestamp ts);

  // ---- direct level mutation for quantity whose order ids are unknown (replays)
  // Adds anonymous quantity at a price; throws std::invalid_argument for qty <= 0 or a price
  // that would cross the opposite side. Returns the new level total.
  Qty add_level_size(Side side, Price price, Qty qty, Timestamp ts = 0);
  // Removes up to qty at a price: anonymous quantity first, then the newest orders. Returns
  // the quantity removed (0 when there is no level). Throws for qty <= 0.
  Qty remove_level_size(Side side, Price price, Qty qty, Timestamp ts = 0);

  // ---- views
  [[nodiscard]] bool best(Side side, Price& price, Qty& size) const noexcept;
  [[nodiscard]] std::size_t level_count(Side side) const noexcept;
  [[nodiscard]] Qty level_size(Side side, Price price) const noexcept;
  // Up to n levels from the inside into prices/sizes (either may be null); returns the count.
  std::size_t levels(Side side, std::size_t n, Price* prices, Qty* sizes,
                     std::uint32_t* orders = nullptr) const noexcept;
  // Top n of both sides; unused slots get price 0 and size 0. Returns levels written per side
  // through bid_n/ask_n.
  void snapshot(std::size_t n, Price* bid_px, Qty* bid_sz, Price* ask_px, Qty* ask_sz,
                std::size_t& bid_n, std::size_t& ask_n) const noexcept;
  [[nodiscard]] bool find(OrderId id, OrderInfo& out) const noexcept;
  // The queue of one level in priority order: `anon` gets the quantity of unknown orders (which
  // comes first), ids/sizes the first n known orders, front first (either may be null). Returns
  // the number of known orders at the level (0, and anon 0, when there is no level).
  std::size_t level_queue(Side side, Price price, std::size_t n, OrderId* ids, Qty* sizes,
                          Qty& anon) const noexcept;
  [[nodiscard]] std::size_t order_count() const noexcept { return index_.size(); }
  // Empty string when every invariant holds, else the first violation found.
  [[nodiscard]] std::string check_invariants() const;

  // ---- events
  [[nodiscard]] const std::vector<Event>& events() const noexcept { return events_; }
  void clear_events() noexcept { events_.clear(); }
  void set_record_events(bool on) noexcept { record_ = on; }
  [[nodiscard]] bool record_events() const noexcept { return record_; }
  void clear() noexcept;

  // Applies a batch in order; throws std::invalid_argument (before applying anything) when a
  // kind or a submit's side is not a valid code.
  void apply(const OpBatch& ops);

 private:
  static constexpr std::uint32_t kNil = 0xffffffffu;
  struct Node {
    OrderId id;
    Qty qty;
    Timestamp ts;
    std::uint32_t level, prev, next;
    Side side;
  };
  struct Level {
    Price price;
    Qty total;  // anon + sum of order quantities
    Qty anon;   // quantity of unknown orders (ahead of known orders in priority)
    std::uint32_t count, head, tail;
  };
  struct Slot {
    std::int64_t key;  // price for bids, -price for asks: inside at the back
    std::uint32_t level;
  };
  // Open-addressing id -> node index map (linear probing, backward-shift deletion).
  class IdIndex {
   public:
    explicit IdIndex(std::size_t expected);
    [[nodiscard]] std::uint32_t get(OrderId id) const noexcept;
    void put(OrderId id, std::uint32_t v);
    void erase(OrderId id) noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    void clear() noexcept;

   private:
    struct Cell {
      OrderId key;
      std::uint32_t val;  // kNil: empty
    };
    [[nodiscard]] std::size_t home(OrderId id) const noexcept;
    void grow();
    std::vector<Cell> cells_;
    std::size_t mask_ = 0, size_ = 0;
    int shift_ = 0;
  };

  std::vector<Slot>& ladder(Side s) noexcept { return s == Side::Buy ? bids_ : asks_; }
  const std::vector<Slot>& ladder(Side s) const noexcept { return s == Side::Buy ? bids_ : asks_; }
  static std::int64_t key_of(Side s, Price p) noexcept { return s == Side::Buy ? p : -p; }
  [[nodiscard]] std::uint32_t find_level(Side s, Price p) const noexcept;
  std::uint32_t level_for(Side s, Price p);
  void drop_level(Side s, std::uint32_t lvl);
  std::uint32_t new_node();
  void unlink(std::uint32_t n) noexcept;
  void rest(OrderId id, Side side, Price price, Qty qty, Timestamp ts);
  Qty take(std::uint32_t n, Qty qty, Timestamp ts);  // from a resting order, frees at 0
  Qty match(OrderId taker, Side side, bool limited, Price limit, Qty qty, Timestamp ts);
  [[nodiscard]] bool crosses(Side side, Price price) const noexcept;
  [[nodiscard]] Qty available(Side side, bool limited, Price limit, Qty need) const noexcept;
  void emit(EventType t, Timestamp ts, OrderId id, OrderId other, Price price, Qty size, Side side,
            RejectReason r = RejectReason::None);
  void level_event(Side s, const Level& l, Timestamp ts) {
    if (record_) emit(EventType::LevelChanged, ts, 0, 0, l.price, l.total, s);
  }

  std::vector<Node> nodes_;
  std::vector<std::uint32_t> free_nodes_;
  std::vector<Level> levels_;
  std::vector<std::uint32_t> free_levels_;
  std::vector<Slot> bids_, asks_;
  IdIndex index_;
  std::vector<Event> events_;
  bool record_ = true;
};

}  // namespace tradecore::book
