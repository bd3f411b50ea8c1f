#include "tradecore/book/features.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace tradecore::book {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

const char* feature_name(Feature f) noexcept {
  switch (f) {
    case Feature::Spread:
      return "spread";
    case Feature::Mid:
      return "mid";
    case Feature::Microprice:
      return "microprice";
    case Feature::Imbalance:
      return "imbalance";
    case Feature::Ofi:
      return "ofi";
    case Feature::Vpin:
      return "vpin";
    case Feature::TradeImbalance:
      return "trade_imbalance";
    case Feature::RealizedVol:
      return "realized_vol";
  }
  return "?";
}

void validate(const FeatureConfig& c) {
  if (c.depth == 0) throw std::invalid_argument("features: depth must be >= 1");
  if (c.vpin_bucket_volume <= 0)
    throw std::invalid_argument("features: vpin_bucket_volume must be > 0");
  if (c.vpin_buckets == 0) throw std::invalid_argument("features: vpin_buckets must be >= 1");
  if (c.trade_window == 0) throw std::invalid_argument("features: trade_window must be >= 1");
  if (c.rv_window == 0) throw std::invalid_argument("features: rv_window must be >= 1");
}

FeatureEngine::FeatureEngine(const FeatureConfig& config) : cfg_(config) {
  validate(cfg_);
  bucket_imb_.assign(cfg_.vpin_buckets, 0.0);
  signs_.assign(cfg_.trade_window, 0);
  r2_.assign(cfg_.rv_window, 0.0);
  scratch_.assign(cfg_.depth, 0);
  reset();
}

void FeatureEngine::reset() noexcept {
  for (double& x : row_.v) x = kNaN;
  row_.v[static_cast<int>(Feature::Ofi)] = 0.0;
  have_prev_ = hb_ = ha_ = false;
  pb_ = pa_ = qb_ = qa_ = 0;
  last_mid_ = 0.0;
  bucket_buy_ = bucket_sell_ = 0;
  bucket_pos_ = bucket_n_ = 0;
  bucket_sum_ = 0.0;
  sign_pos_ = sign_n_ = 0;
  sign_sum_ = 0;
  r2_pos_ = r2_n_ = 0;
  r2_sum_ = 0.0;
}

void FeatureEngine::on_trade(int sign, Qty size) noexcept {
  if (size <= 0 || sign == 0) return;
  // trade-sign imbalance over the last trade_window trades
  const std::int8_t s = sign > 0 ? 1 : -1;
  if (sign_n_ == signs_.size())
    sign_sum_ -= signs_[sign_pos_];
  else
    ++sign_n_;
  signs_[sign_pos_] = s;
  sign_sum_ += s;
  sign_pos_ = (sign_pos_ + 1) % signs_.size();
  row_.v[static_cast<int>(Feature::TradeImbalance)] =
      static_cast<double>(sign_sum_) / static_cast<double>(sign_n_);
  // VPIN: fill equal-volume buckets, splitting a trade across bucket boundaries
  const Qty V = cfg_.vpin_bucket_volume;
  Qty left = size;
  while (left > 0) {
    const Qty room = V - bucket_buy_ - bucket_sell_;
    const Qty put = left < room ? left : room;
    (s > 0 ? bucket_buy_ : bucket_sell_) += put;
    left -= put;
    if (bucket_buy_ + bucket_sell_ == V) {
      const double imb = std::fabs(static_cast<double>(bucket_buy_ - bucket_sell_));
      if (bucket_n_ == bucket_imb_.size())
        bucket_sum_ -= bucket_imb_[bucket_pos_];
      else
        ++bucket_n_;
      bucket_imb_[bucket_pos_] = imb;
      bucket_sum_ += imb;
      bucket_pos_ = (bucket_pos_ + 1) % bucket_imb_.size();
      bucket_buy_ = bucket_sell_ = 0;
      row_.v[static_cast<int>(Feature::Vpin)] =
          bucket_sum_ / (static_cast<double>(bucket_n_) * static_cast<double>(V));
    }
  }
}

void FeatureEngine::on_book(const OrderBook& book) noexcept {
  Price pb = 0, pa = 0;
  Qty qb = 0, qa = 0;
  const bool hb = book.best(Side::Buy, pb, qb);
  const bool ha = book.best(Side::Sell, pa, qa);
  double* v = row_.v;
  // OFI e_n = q_b[Pb>=Pb'] - q_b'[Pb<=Pb'] - q_a[Pa<=Pa'] + q_a'[Pa>=Pa'] (primes: before)
  double e = 0.0;
  if (have_prev_) {
    if (hb && hb_) {
      if (pb >= pb_) e += static_cast<double>(qb);
      if (pb <= pb_) e -= static_cast<double>(qb_);
    }
    if (ha && ha_) {
      if (pa <= pa_) e -= static_cast<double>(qa);
      if (pa >= pa_) e += static_cast<double>(qa_);
    }
  }
  v[static_cast<int>(Feature::Ofi)] = e;
  have_prev_ = true;
  pb_ = pb, pa_ = pa, qb_ = qb, qa_ = qa, hb_ = hb, ha_ = ha;
  if (hb && ha) {
    const double b = static_cast<double>(pb), a = static_cast<double>(pa);
    const double mid = 0.5 * (a + b);
    v[static_cast<int>(Feature::Spread)] = a - b;
    v[static_cast<int>(Feature::Mid)] = mid;
    v[static_cast<int>(Feature::Microprice)] =
        (b * static_cast<double>(qa) + a * static_cast<double>(qb)) / static_cast<double>(qa + qb);
    if (last_mid_ > 0.0 && mid > 0.0 && mid != last_mid_) {
      const double r = std::log(mid / last_mid_);
      const double r2 = r * r;
      if (r2_n_ == r2_.size())
        r2_sum_ -= r2_[r2_pos_];
      else
        ++r2_n_;
      r2_[r2_pos_] = r2;
      r2_sum_ += r2;
      r2_pos_ = (r2_pos_ + 1) % r2_.size();
      if (r2_sum_ < 0.0) r2_sum_ = 0.0;
    }
    if (mid > 0.0) last_mid_ = mid;
    v[static_cast<int>(Feature::RealizedVol)] = r2_n_ ? std::sqrt(r2_sum_) : kNaN;
  } else {
    v[static_cast<int>(Feature::Spread)] = kNaN;
    v[static_cast<int>(Feature::Mid)] = kNaN;
    v[static_cast<int>(Feature::Microprice)] = kNaN;
  }
  Qty* buf = scratch_.data();
  const std::size_t nb = book.levels(Side::Buy, cfg_.depth, nullptr, buf);
  Qty db = 0, da = 0;
  for (std::size_t k = 0; k < nb; ++k) db += buf[k];
  const std::size_t na = book.levels(Side::Sell, cfg_.depth, nullptr, buf);
  for (std::size_t k = 0; k < na; ++k) da += buf[k];
  v[static_cast<int>(Feature::Imbalance)] =
      db + da > 0 ? static_cast<double>(db - da) / static_cast<double>(db + da) : kNaN;
}

void FeatureEngine::update(const OrderBook& book, const Event* events, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    if (events[i].type == EventType::Trade)
      on_trade(static_cast<int>(events[i].side), events[i].size);
  on_book(book);
}

}  // namespace tradecore::book
