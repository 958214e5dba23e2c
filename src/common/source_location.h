// The caller's source position, as std::source_location. libstdc++'s std::source_location needs
// __builtin_source_location, which clang before 15 lacks (the tidy preset parses the tree with
// clang 14); there this class stands in with the same members, filled by the older builtins.
#pragma once

#include <version>

#ifdef __cpp_lib_source_location
#include <source_location>

namespace tilenorm {
using SourceLocation = std::source_location;
}  // namespace tilenorm

#else
#include <cstdint>

namespace tilenorm {

class SourceLocation {
 public:
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          const char* function = __builtin_FUNCTION(),
                                          uint_least32_t line = __builtin_LINE(),
                                          uint_least32_t column = __builtin_COLUMN()) noexcept {
    SourceLocation l;
    l.file_ = file;
    l.function_ = function;
    l.line_ = line;
    l.column_ = column;
    return l;
  }
  constexpr SourceLocation() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr uint_least32_t line() const noexcept { return line_; }
  constexpr uint_least32_t column() const noexcept { return column_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  uint_least32_t line_ = 0;
  uint_least32_t column_ = 0;
};

}  // namespace tilenorm

#endif
