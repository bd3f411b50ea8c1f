// Option-type strings to codes, in both numpy layouts (UCS-4 and bytes), every width.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"
#include "tradecore/pricing/option_type.hpp"

using namespace tradecore::pricing;

namespace {

// n strings as a numpy-like fixed-width buffer of `width` characters each (NUL padded).
std::vector<char> ucs4(const std::vector<std::u32string>& s, std::size_t width) {
  std::vector<char> buf(s.size() * width * 4, 0);
  for (std::size_t i = 0; i < s.size(); ++i)
    std::memcpy(buf.data() + i * width * 4, s[i].data(), s[i].size() * 4);
  return buf;
}
std::vector<char> bytes(const std::vector<std::string>& s, std::size_t width) {
  std::vector<char> buf(s.size() * width, 0);
  for (std::size_t i = 0; i < s.size(); ++i)
    std::memcpy(buf.data() + i * width, s[i].data(), s[i].size());
  return buf;
}

}  // namespace

TEST(accepted_spellings_in_any_case) {
  const std::vector<std::string> good = {"call", "CALL", "Call", "put", "PUT",
                                         "pUt",  "c",    "C",    "p",   "P"};
  const std::int8_t want[] = {1, 1, 1, -1, -1, -1, 1, 1, -1, -1};
  for (std::size_t width = 4; width <= 9; ++width) {
    std::vector<std::int8_t> out(good.size());
    const auto b = bytes(good, width);
    CHECK(parse_option_types_bytes(b.data(), good.size(), width, std::ptrdiff_t(width),
                                   out.data()) == good.size());
    for (std::size_t i = 0; i < good.size(); ++i) CHECK(out[i] == want[i]);
    std::vector<std::u32string> wide;
    for (const auto& s : good) wide.emplace_back(s.begin(), s.end());
    const auto u = ucs4(wide, width);
    std::fill(out.begin(), out.end(), 0);
    CHECK(parse_option_types_ucs4(u.data(), good.size(), width, std::ptrdiff_t(width * 4),
                                  out.data()) == good.size());
    for (std::size_t i = 0; i < good.size(); ++i) CHECK(out[i] == want[i]);
  }
}

TEST(the_first_bad_element_is_reported) {
  // Near misses: other letters, trailing characters, leading/embedded spaces, characters that
  // OR 0x20 would map onto a letter ('@' | 0x20 == '`'), non-ASCII.
  const std::vector<std::string> bad = {"calls", "puts", "cal",   "pu",       "x",    " c",  "c ",
                                        "",      "ca",   "p\x01", "CALL\x01", "@ALL", "\xe3"};
  for (const auto& s : bad) {
    for (std::size_t width :
         {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(4), std::size_t(6)}) {
      if (s.size() > width) continue;
      const std::vector<std::string> rows = {"call", "put", s, "c"};
      const std::size_t w = std::max<std::size_t>(width, 4);
      std::vector<std::int8_t> out(rows.size());
      const auto b = bytes(rows, w);
      CHECK(parse_option_types_bytes(b.data(), rows.size(), w, std::ptrdiff_t(w), out.data()) == 2);
      std::vector<std::u32string> wide;
      for (const auto& r : rows) wide.emplace_back(r.begin(), r.end());
      const auto u = ucs4(wide, w);
      CHECK(parse_option_types_ucs4(u.data(), rows.size(), w, std::ptrdiff_t(w * 4), out.data()) ==
            2);
    }
  }
}

TEST(narrow_widths_and_strides) {
  // Width 1: only "c"/"p"; a stride wider than the element skips the bytes in between.
  const char one[] = {'c', 'x', 'P', 'x', 'p', 'x'};
  std::int8_t out[3] = {0, 0, 0};
  CHECK(parse_option_types_bytes(one, 3, 1, 2, out) == 3);
  CHECK(out[0] == 1 && out[1] == -1 && out[2] == -1);
  // Width 0 (numpy '<U0'): nothing is an option type.
  CHECK(parse_option_types_bytes(one, 3, 0, 0, out) == 0);
  // A code of 0 for anything but call/put from the scalar helper.
  const char32_t call[] = {U'c', U'A', U'l', U'L', 0, 0};
  const char32_t calls[] = {U'c', U'a', U'l', U'l', U's'};
  CHECK(option_type_code(call, 6) == 1);
  CHECK(option_type_code(calls, 5) == 0);
}

TEST(large_batches_run_in_parallel_and_agree) {
  const std::size_t n = (1 << 17) + 3;  // above the parallel threshold, a ragged last chunk
  std::vector<std::string> rows(n);
  for (std::size_t i = 0; i < n; ++i) rows[i] = i % 3 ? "put" : "call";
  rows[n - 2] = "pot";
  rows[70000] = "cull";
  const auto b = bytes(rows, 4);
  std::vector<std::int8_t> out(n);
  CHECK(parse_option_types_bytes(b.data(), n, 4, 4, out.data(), 2) == 70000);
  CHECK(out[0] == 1 && out[1] == -1 && out[n - 1] == (((n - 1) % 3) ? -1 : 1));
}

TEST_MAIN()
