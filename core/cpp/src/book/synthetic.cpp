#include "tradecore/book/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tradecore::book {

namespace {

std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

}  // namespace

void SyntheticMessages::clear() noexcept {
  ts.clear();
  type.clear();
  order_id.clear();
  side.clear();
  price.clear();
  size.clear();
}

void SyntheticMessages::push(Timestamp t, std::uint8_t k, OrderId id, Side s, Price p, Qty q) {
  ts.push_back(t);
  type.push_back(k);
  order_id.push_back(id);
  side.push_back(static_cast<std::int8_t>(s));
  price.push_back(p);
  size.push_back(q);
}

SyntheticFlow::SyntheticFlow(OrderBook& book, const SyntheticConfig& cfg) : book_(book), cfg_(cfg) {
  if (!(cfg.rate > 0.0) || !std::isfinite(cfg.rate)) {
    throw std::invalid_argument("rate must be finite and > 0");
  }
  if (cfg.tick <= 0) throw std::invalid_argument("tick must be > 0");
  if (cfg.mid <= 0) throw std::invalid_argument("mid must be > 0");
  if (!(cfg.drift >= 0.0) || !std::isfinite(cfg.drift)) {
    throw std::invalid_argument("drift must be finite and >= 0");
  }
  // xoshiro256** state from both keys through splitmix64 (never all zero).
  std::uint64_t x = cfg.seed ^ rotl(cfg.stream * 0xd1b54a32d192ed03ULL, 17);
  for (auto& w : s_) w = splitmix64(x);
  t_ = static_cast<double>(cfg.start_ns);
  mid_ = static_cast<double>(cfg.mid);
  gap_ns_ = 1e9 / cfg.rate;
  book_.set_record_events(true);
  book_.clear_events();
}

std::uint64_t SyntheticFlow::next_u64() noexcept {
  const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

double SyntheticFlow::uniform() noexcept {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

std::uint64_t SyntheticFlow::below(std::uint64_t n) noexcept {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
}

double SyntheticFlow::normal() noexcept {
  // Box-Muller (one of the pair); u1 in (0, 1].
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

const SyntheticMessages& SyntheticFlow::next(std::size_t ops) {
  out_.clear();
  for (std::size_t i = 0; i < ops; ++i) {
    t_ += -gap_ns_ * std::log1p(-uniform());  // exponential gap
    // Exchange times are int64 nanoseconds: stop before the cast would overflow.
    if (!(t_ < 9.2e18))
      throw std::invalid_argument(
          "synthetic flow: exchange time passed the int64 nanosecond "
          "range (rate too low for the start time and count)");
    const auto ts = static_cast<Timestamp>(t_);
    Price bid = 0, ask = 0;
    Qty bq = 0, aq = 0;
    if (book_.best(Side::Buy, bid, bq) && book_.best(Side::Sell, ask, aq)) {
      mid_ = 0.5 * static_cast<double>(bid + ask);
    }
    if (ops_ % kPressureEvery == 0) {
      pressure_ = std::clamp(pressure_ + cfg_.drift * normal(), -0.3, 0.3);
    }
    ++ops_;
    // 15 % market orders; cancels up to 40 %, fewer while the book is thin (each resting
    // order is as likely to be cancelled as the next: the book settles at a depth where adds
    // balance cancels and fills); the rest adds.
    const double u = uniform();
    const auto resting = static_cast<double>(book_.order_count());
    const double p_cancel = 0.40 * resting / (resting + kDepthScale);
    if (ops_ <= kWarmupOps || live_.empty() || u < 0.85 - p_cancel) {
      add(ts);
    } else if (u < 0.85) {
      cancel(ts);
    } else {
      market(ts);
    }
    book_.clear_events();
  }
  return out_;
}

void SyntheticFlow::add(Timestamp ts) {
  const Side side = uniform() < 0.5 ? Side::Buy : Side::Sell;
  // Levels away from the mid, geometric with p = 0.2 (1 = at the touch).
  const double g = std::floor(std::log1p(-uniform()) / std::log(0.8));
  const auto offset = static_cast<Price>(std::min(g, 1e6));
  const double tick = static_cast<double>(cfg_.tick);
  const auto lo = static_cast<Price>(std::floor(mid_ / tick)) * cfg_.tick;
  const Price hi = std::max(static_cast<Price>(std::ceil(mid_ / tick)) * cfg_.tick, lo + cfg_.tick);
  Price price = side == Side::Buy ? lo - offset * cfg_.tick : hi + offset * cfg_.tick;
  if (price < cfg_.tick) price = cfg_.tick;
  const Qty size = static_cast<Qty>(1 + below(9)) * 100;
  const OrderId id = next_id_++;
  book_.submit(id, side, OrderType::PostOnly, price, size, ts);
  for (const Event& e : book_.events()) {
    if (e.type == EventType::Accepted && e.order_id == id) {
      out_.push(ts, kMsgAdd, id, side, price, size);
      live_.push_back(id);
    }
  }
}

void SyntheticFlow::cancel(Timestamp ts) {
  if (live_.size() > 2 * book_.order_count() + 1024) compact();
  const double far = static_cast<double>(kFarTicks * cfg_.tick);
  std::size_t pick = live_.size();
  OrderInfo info;
  for (int d = 0; d < kCancelDraws && !live_.empty();) {
    const std::size_t j = below(live_.size());
    if (!book_.find(live_[j], info)) {  // filled since: forget it, draw again
      live_[j] = live_.back();
      live_.pop_back();
      continue;
    }
    pick = j;
    ++d;
    if (std::abs(static_cast<double>(info.price) - mid_) > far) break;
  }
  if (pick >= live_.size()) return;  // nothing rests any more
  const OrderId id = live_[pick];
  live_[pick] = live_.back();
  live_.pop_back();
  book_.cancel(id, ts);  // info is the pick's: the last order found
  out_.push(ts, kMsgDelete, id, info.side, info.price, info.size);
}

void SyntheticFlow::market(Timestamp ts) {
  const Side side = uniform() < 0.5 + pressure_ ? Side::Buy : Side::Sell;
  const Qty size = static_cast<Qty>(1 + below(11)) * 100;
  const OrderId id = next_id_++;
  book_.submit(id, side, OrderType::Market, 0, size, ts);
  const Side maker = side == Side::Buy ? Side::Sell : Side::Buy;
  for (const Event& e : book_.events()) {
    if (e.type == EventType::Trade && e.order_id == id) {
      out_.push(ts, kMsgExecute, e.other_id, maker, e.price, e.size);
    }
  }
}

void SyntheticFlow::compact() {
  OrderInfo info;
  std::erase_if(live_, [&](OrderId id) { return !book_.find(id, info); });
}

}  // namespace tradecore::book
