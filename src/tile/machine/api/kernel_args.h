// Runtime args as tt-metal kernels read them: uint32_t words set by the host per core
// (Program::set_runtime_arg_words) or for every core of the kernel
// (Program::set_common_runtime_arg_words). Every kernel kind may call these.
#pragma once

#include <cstring>
#include <type_traits>

#include "tile/machine/api/common.h"

namespace tilenorm::tile {

namespace detail {
// Word `index` of the calling kernel's per-core (common = false) or common args; an index past
// what the host set is an `arg-out-of-range` report that stops the core in every sanitizer mode.
uint32_t runtime_arg_word(uint32_t index, bool common, SrcLoc loc);
}  // namespace detail

// The word as a T (4 bytes, trivially copyable).
template <typename T>
T arg_as(uint32_t word) {
  static_assert(sizeof(T) == sizeof(uint32_t) && std::is_trivially_copyable_v<T>,
                "get_arg_val / get_common_arg_val read one 32-bit word");
  T value;
  std::memcpy(&value, &word, sizeof word);
  return value;
}

// As tt-metal's get_arg_val<T>(arg_idx): word `index` of this core's runtime args as a T.
template <typename T>
T get_arg_val(uint32_t index, SrcLoc loc = SrcLoc::current()) {
  return arg_as<T>(detail::runtime_arg_word(index, false, loc));
}

// As tt-metal's get_common_arg_val<T>(arg_idx): word `index` of the args shared by every core.
template <typename T>
T get_common_arg_val(uint32_t index, SrcLoc loc = SrcLoc::current()) {
  return arg_as<T>(detail::runtime_arg_word(index, true, loc));
}

}  // namespace tilenorm::tile
