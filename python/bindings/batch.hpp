#pragma once
// The seven option-input arrays as one core batch view (shared by the European and American
// bindings). No copies: every array must already be a 1-D array of the right dtype.
#include "common.hpp"
#include "tradecore/pricing/european.hpp"

namespace tradecore::bindings {

inline pricing::EuropeanBatch european_batch(const py::array& S, const py::array& K,
                                             const py::array& T, const py::array& r,
                                             const py::array& q, const py::array& sigma,
                                             const py::array& type,
                                             pricing::Model model = pricing::Model::Bsm) {
  const py::ssize_t n = type.ndim() == 1 ? type.shape(0) : -1;
  pricing::EuropeanBatch b;
  b.type = view<std::int8_t>(type, "option_type", n);
  b.spot = view<double>(S, "spot", n);
  b.strike = view<double>(K, "strike", n);
  b.expiry = view<double>(T, "expiry", n);
  b.rate = view<double>(r, "rate", n);
  b.dividend = view<double>(q, "dividend", n);
  b.vol = view<double>(sigma, "volatility", n);
  b.n = static_cast<std::size_t>(n);
  b.model = model;
  return b;
}

}  // namespace tradecore::bindings
