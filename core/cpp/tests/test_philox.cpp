// Philox 4x32-10 against Random123's known-answer vectors (kat_vectors, philox4x32 10 rounds),
// and the normals' keying: each (seed, path, variable) is independent of the batch it is in.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "tradecore/risk/normals.hpp"
#include "tradecore/risk/philox.hpp"

using namespace tradecore::risk;

namespace {

bool block_is(const PhiloxCounter& got, std::uint32_t a, std::uint32_t b, std::uint32_t c,
              std::uint32_t d) {
  return got.v[0] == a && got.v[1] == b && got.v[2] == c && got.v[3] == d;
}

}  // namespace

TEST(random123_known_answers) {
  CHECK(block_is(philox4x32_10({{0, 0, 0, 0}}, {{0, 0}}), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu,
                 0x9b00dbd8u));
  CHECK(block_is(philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                               {{0xffffffffu, 0xffffffffu}}),
                 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu));
  CHECK(block_is(philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                               {{0xa4093822u, 0x299f31d0u}}),
                 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u));
}

TEST(uniforms_stay_inside_the_open_interval) {
  CHECK(uniform_open(0, 0) > 0.0);
  CHECK(uniform_open(0xffffffffu, 0xffffffffu) < 1.0);
}

TEST(batch_values_are_the_pointwise_normals_whatever_the_split) {
  const std::uint64_t seed = 0x0123456789abcdefULL;
  const std::uint64_t paths = 37, factors = 5, first = (std::uint64_t{1} << 32) - 20;
  std::vector<double> whole(paths * factors), head(10 * factors), tail((paths - 10) * factors);
  philox_normals(seed, first, paths, factors, whole.data(), 3);
  philox_normals(seed, first, 10, factors, head.data(), 1);
  philox_normals(seed, first + 10, paths - 10, factors, tail.data(), 2);
  for (std::uint64_t i = 0; i < paths; ++i)
    for (std::uint64_t j = 0; j < factors; ++j) {
      const double v = whole[i * factors + j];
      CHECK(v == normal(seed, first + i, static_cast<std::uint32_t>(j)));
      CHECK(v == (i < 10 ? head[i * factors + j] : tail[(i - 10) * factors + j]));
    }
}

TEST(invalid_sizes_are_rejected) {
  double out[1];
  CHECK_THROWS(std::invalid_argument, philox_normals(1, 0, 0, 1, out));
  CHECK_THROWS(std::invalid_argument, philox_normals(1, 0, 1, 0, out));
  CHECK_THROWS(std::invalid_argument, validate_normals(0, kMaxNormals, 2));
  CHECK_THROWS(std::invalid_argument, validate_normals(~std::uint64_t{0}, 2, 1));
  validate_normals(~std::uint64_t{0}, 1, 1);  // the last path is valid
}

TEST_MAIN()
