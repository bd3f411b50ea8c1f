#pragma once
// Option-type strings to the core's int8 codes (+1 call, -1 put), straight from fixed-width
// character buffers (numpy '<U' arrays: UCS-4, 'S' arrays: bytes). Accepted, in any case:
// "call", "put", "c", "p"; an element is the characters before its first NUL (numpy pads with
// NULs), nothing else may follow them.
#include <cstddef>
#include <cstdint>

namespace tradecore::pricing {

// One parsed code: +1, -1, or 0 for anything else.
std::int8_t option_type_code(const char32_t* chars, std::size_t len) noexcept;

// Parses n elements of `width` characters each, `stride` bytes apart (a multiple of the character
// size), into out[0..n). Returns the index of the first element that is not an option type, or
// n when all are. `threads` as elsewhere (0: the runtime default); small batches run on one.
std::size_t parse_option_types_ucs4(const char* data, std::size_t n, std::size_t width,
                                    std::ptrdiff_t stride, std::int8_t* out, int threads = 0);
std::size_t parse_option_types_bytes(const char* data, std::size_t n, std::size_t width,
                                     std::ptrdiff_t stride, std::int8_t* out, int threads = 0);

}  // namespace tradecore::pricing
