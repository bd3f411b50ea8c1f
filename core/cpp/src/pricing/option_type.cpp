// Option-type strings to int8 codes. Each element is compared as whole machine words against the
// four accepted spellings: OR-ing 0x20 into a letter's low byte lower-cases it, and since every
// accepted character is a letter, (c | 0x20) == lower(letter) holds exactly for that letter in
// either case; padding must be exactly zero. No per-element branches in the common widths, so
// the loops vectorise; one pass, spread over threads for large batches.
#include "tradecore/pricing/option_type.hpp"

#include <algorithm>
#include <cstring>

#include "../threads.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tradecore::pricing {

namespace {

constexpr std::size_t kParallelMin = 1 << 16;
constexpr std::size_t kChunk = 1 << 14;

inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline std::uint32_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// UCS-4 (little endian): two characters per 64-bit word.
constexpr std::uint64_t u2(char32_t a, char32_t b) noexcept {
  return std::uint64_t(a) | (std::uint64_t(b) << 32);
}

// The code of the first four characters c0..c3 (as two words lo = c0c1, hi = c2c3) given that any
// further characters are zero.
inline std::int8_t code_ucs4(std::uint64_t lo, std::uint64_t hi) noexcept {
  constexpr std::uint64_t both = u2(0x20, 0x20), first = u2(0x20, 0);
  // Bitwise (not short-circuit) so that the comparisons stay branch-free and vectorise.
  const std::uint64_t l2 = lo | both, l1 = lo | first;
  const int call = int(l2 == u2('c', 'a')) & int((hi | both) == u2('l', 'l'));
  const int put = int(l2 == u2('p', 'u')) & int((hi | first) == u2('t', 0));
  const int empty_hi = int(hi == 0);
  const int c = int(l1 == u2('c', 0)) & empty_hi;
  const int p = int(l1 == u2('p', 0)) & empty_hi;
  return static_cast<std::int8_t>((call | c) - (put | p));
}

// Bytes: four characters per 32-bit word.
constexpr std::uint32_t b4(char a, char b, char c, char d) noexcept {
  return std::uint32_t(std::uint8_t(a)) | (std::uint32_t(std::uint8_t(b)) << 8) |
         (std::uint32_t(std::uint8_t(c)) << 16) | (std::uint32_t(std::uint8_t(d)) << 24);
}

inline std::int8_t code_bytes(std::uint32_t w) noexcept {
  const int call = int((w | b4(0x20, 0x20, 0x20, 0x20)) == b4('c', 'a', 'l', 'l'));
  const int put = int((w | b4(0x20, 0x20, 0x20, 0)) == b4('p', 'u', 't', 0));
  const std::uint32_t w1 = w | b4(0x20, 0, 0, 0);
  const int c = int(w1 == b4('c', 0, 0, 0));
  const int p = int(w1 == b4('p', 0, 0, 0));
  return static_cast<std::int8_t>((call | c) - (put | p));
}

// Parses rows [begin, end) with `one(row_pointer)`; returns the first bad row or `end`.
template <class One>
std::size_t parse_range(const char* data, std::size_t begin, std::size_t end, std::ptrdiff_t stride,
                        std::int8_t* out, const One& one) {
  int bad = 0;
  const char* p = data + static_cast<std::ptrdiff_t>(begin) * stride;
  for (std::size_t i = begin; i < end; ++i, p += stride) {
    const std::int8_t code = one(p);
    out[i] = code;
    bad |= int(code == 0);
  }
  if (!bad) return end;
  for (std::size_t i = begin; i < end; ++i)
    if (out[i] == 0) return i;
  return end;
}

template <class One>
std::size_t parse_all(const char* data, std::size_t n, std::ptrdiff_t stride, std::int8_t* out,
                      int threads, const One& one) {
  if (n < kParallelMin) return parse_range(data, 0, n, stride, out, one);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  std::size_t first = n;
#if defined(_OPENMP)
  const int nt = ::tradecore::detail::resolve_threads(threads);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : first)
#else
  (void)threads;
#endif
  for (std::size_t k = 0; k < chunks; ++k) {
    const std::size_t begin = k * kChunk, end = std::min(n, begin + kChunk);
    const std::size_t bad = parse_range(data, begin, end, stride, out, one);
    if (bad < end) first = std::min(first, bad);
  }
  return first;
}

// Whether the `count` bytes at p are all zero.
inline bool zeros(const char* p, std::size_t count) noexcept {
  unsigned char acc = 0;
  for (std::size_t k = 0; k < count; ++k) acc |= static_cast<unsigned char>(p[k]);
  return acc == 0;
}

}  // namespace

std::int8_t option_type_code(const char32_t* chars, std::size_t len) noexcept {
  while (len > 0 && chars[len - 1] == 0) --len;
  if (len > 4) return 0;
  char32_t w[4] = {0, 0, 0, 0};
  for (std::size_t k = 0; k < len; ++k) w[k] = chars[k];
  return code_ucs4(u2(w[0], w[1]), u2(w[2], w[3]));
}

std::size_t parse_option_types_ucs4(const char* data, std::size_t n, std::size_t width,
                                    std::ptrdiff_t stride, std::int8_t* out, int threads) {
  switch (width) {
    case 1:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_ucs4(load32(p), 0); });
    case 2:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_ucs4(load64(p), 0); });
    case 3:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_ucs4(load64(p), load32(p + 8)); });
    case 4:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_ucs4(load64(p), load64(p + 8)); });
    default:
      if (width == 0) {
        std::fill(out, out + n, std::int8_t{0});
        return 0;
      }
      return parse_all(data, n, stride, out, threads, [width](const char* p) {
        const std::int8_t code = code_ucs4(load64(p), load64(p + 8));
        return zeros(p + 16, 4 * (width - 4)) ? code : std::int8_t{0};
      });
  }
}

std::size_t parse_option_types_bytes(const char* data, std::size_t n, std::size_t width,
                                     std::ptrdiff_t stride, std::int8_t* out, int threads) {
  switch (width) {
    case 1:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_bytes(std::uint8_t(p[0])); });
    case 2:
      return parse_all(data, n, stride, out, threads, [](const char* p) {
        return code_bytes(std::uint32_t(std::uint8_t(p[0])) |
                          (std::uint32_t(std::uint8_t(p[1])) << 8));
      });
    case 3:
      return parse_all(data, n, stride, out, threads, [](const char* p) {
        return code_bytes(std::uint32_t(std::uint8_t(p[0])) |
                          (std::uint32_t(std::uint8_t(p[1])) << 8) |
                          (std::uint32_t(std::uint8_t(p[2])) << 16));
      });
    case 4:
      return parse_all(data, n, stride, out, threads,
                       [](const char* p) { return code_bytes(load32(p)); });
    default:
      if (width == 0) {
        std::fill(out, out + n, std::int8_t{0});
        return 0;
      }
      return parse_all(data, n, stride, out, threads, [width](const char* p) {
        const std::int8_t code = code_bytes(load32(p));
        return zeros(p + 4, width - 4) ? code : std::int8_t{0};
      });
  }
}

}  // namespace tradecore::pricing
