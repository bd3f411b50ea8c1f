#pragma once
// LOBSTER (lobsterdata.com) message/orderbook files: parsing from memory and replay into an
// OrderBook with verification of every reconstructed top-N row against the orderbook file.
// The caller reads the files; the core only sees their bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tradecore/book/features.hpp"
#include "tradecore/book/order_book.hpp"

namespace tradecore::book::lobster {

inline constexpr std::int64_t kEmptyAsk = 9999999999;   // sentinel price of an empty ask level
inline constexpr std::int64_t kEmptyBid = -9999999999;  // sentinel price of an empty bid level

enum class RowStatus : std::uint8_t {
  Exact = 0,  // the reconstructed top-N equals the orderbook row
  Edge = 1,   // differs only in levels that entered from beyond the recorded depth
  Bad = 2,    // anything else
};

// Caller-owned output columns of parse_messages (one element per row).
struct MessageColumns {
  Timestamp* time = nullptr;  // nanoseconds after midnight
  std::int8_t* type = nullptr;
  std::int64_t* id = nullptr;
  std::int64_t* size = nullptr;
  std::int64_t* price = nullptr;
  std::int8_t* direction = nullptr;
};

struct Messages {
  std::size_t n = 0;
  const Timestamp* time = nullptr;
  const std::int8_t* type = nullptr;
  const std::int64_t* id = nullptr;
  const std::int64_t* size = nullptr;
  const std::int64_t* price = nullptr;
  const std::int8_t* direction = nullptr;
};

// Number of non-empty lines.
std::size_t count_rows(std::string_view text) noexcept;
// Number of comma-separated fields in the first non-empty line (0 for an empty text).
std::size_t count_fields(std::string_view text) noexcept;
// Parses `rows` message rows; throws std::invalid_argument naming the line of a malformed row.
void parse_messages(std::string_view text, std::size_t rows, const MessageColumns& out);
// Parses `rows` orderbook rows of 4 * levels integers each into out (row-major).
void parse_book(std::string_view text, std::size_t rows, std::size_t levels, std::int64_t* out);

struct ReplayResult {
  std::size_t messages = 0;
  std::size_t rows_checked = 0;
  std::size_t rows_exact = 0;
  std::size_t rows_edge = 0;
  std::size_t rows_bad = 0;
  std::size_t first_bad_row = static_cast<std::size_t>(-1);
  std::size_t trades = 0;  // visible (4), hidden (5) and cross (6) executions
  std::size_t halts = 0;   // type 7 messages
};

// Replays messages into `book` (cleared first). The state before the first message is the first
// orderbook row with the first message undone; a level that enters from beyond the recorded
// depth is taken from the orderbook file. Every row is compared with the file, classified into
// row_status (may be null) and the visible top-N is re-synchronised with the file.
// When `features` is given, features_out (n x kFeatureCount, row-major; may be null) receives
// the feature row after each message: executions (4, 5) are trades signed by the aggressor.
ReplayResult replay(const Messages& m, const std::int64_t* book_rows, std::size_t levels,
                    OrderBook& book, std::uint8_t* row_status = nullptr,
                    FeatureEngine* features = nullptr, double* features_out = nullptr);

}  // namespace tradecore::book::lobster
