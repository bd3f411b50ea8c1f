#pragma once
// A minimal test harness for the C++ unit tests: CHECK records a failure (with file, line and
// the expression) and the test goes on; main() returns the number of failures. Unlike assert(),
// it is active in Release builds (NDEBUG), which is how the core is built.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace tc_test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline std::vector<std::pair<const char*, std::function<void()>>>& registry() {
  static std::vector<std::pair<const char*, std::function<void()>>> tests;
  return tests;
}

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, fn); }
};

inline void fail(const char* file, int line, const std::string& what) {
  ++failures();
  std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
}

// |a - b| <= tol * max(1, |b|)
inline bool near(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::fmax(1.0, std::fabs(b));
}

inline int run_all() {
  for (const auto& [name, fn] : registry()) {
    const int before = failures();
    try {
      fn();
    } catch (const std::exception& e) {
      fail(name, 0, std::string("unexpected exception: ") + e.what());
    }
    std::fprintf(stderr, "%s %s\n", failures() == before ? "ok  " : "FAIL", name);
  }
  return failures() == 0 ? 0 : 1;
}

}  // namespace tc_test

#define TC_CONCAT2(a, b) a##b
#define TC_CONCAT(a, b) TC_CONCAT2(a, b)
#define TEST(name)                                                    \
  static void name();                                                 \
  static const tc_test::Register TC_CONCAT(reg_, name){#name, &name}; \
  static void name()
#define CHECK(expr) ((expr) ? (void)0 : tc_test::fail(__FILE__, __LINE__, #expr))
#define CHECK_NEAR(a, b, tol)     \
  (tc_test::near((a), (b), (tol)) \
       ? (void)0                  \
       : tc_test::fail(           \
             __FILE__, __LINE__,  \
             std::string(#a " ~ " #b ": ") + std::to_string(a) + " vs " + std::to_string(b)))
// Checks that `stmt` throws E.
#define CHECK_THROWS(E, stmt)                                                       \
  do {                                                                              \
    bool thrown_ = false;                                                           \
    try {                                                                           \
      stmt;                                                                         \
    } catch (const E&) {                                                            \
      thrown_ = true;                                                               \
    }                                                                               \
    if (!thrown_) tc_test::fail(__FILE__, __LINE__, "expected " #E " from " #stmt); \
  } while (0)
#define TEST_MAIN() \
  int main() { return tc_test::run_all(); }
