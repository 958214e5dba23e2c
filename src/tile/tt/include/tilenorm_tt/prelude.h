// What every kernel built by the kernel JIT sees first: tt-metal's kernel-side glue (compile-time
// args, tt::CBIndex, DataFormat, ALWI / FORCE_INLINE, the NAMESPACE / MAIN entry of compute
// kernels) over the tile machine's API. The headers at tt-metal's include paths next to this
// folder bring the API in with using-declarations.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/kernel_args.h"

#ifndef KERNEL_COMPILE_TIME_ARGS
#define KERNEL_COMPILE_TIME_ARGS
#endif

namespace tilenorm_tt {

template <typename... T>
constexpr std::array<uint32_t, sizeof...(T)> make_compile_time_args(T... v) {
  return {static_cast<uint32_t>(v)...};
}
inline constexpr auto kernel_compile_time_args = make_compile_time_args(KERNEL_COMPILE_TIME_ARGS);

template <uint32_t kIndex>
constexpr uint32_t get_ct_arg() {
  static_assert(kIndex < kernel_compile_time_args.size(),
                "get_compile_time_arg_val: index past the compile-time args the host set");
  return kernel_compile_time_args[kIndex];
}

}  // namespace tilenorm_tt

#define get_compile_time_arg_val(i) ::tilenorm_tt::get_ct_arg<(i)>()

#define ALWI inline __attribute__((always_inline))
#define FORCE_INLINE inline __attribute__((always_inline))
#define tt_l1_ptr
#define NAMESPACE tilenorm_tt_kernel
#define MAIN tilenorm_tt_main()

namespace tt {
// tt-metal's CB indices, an unscoped enum so that they convert to uint32_t.
enum CBIndex : uint8_t {
  c_0,
  c_1,
  c_2,
  c_3,
  c_4,
  c_5,
  c_6,
  c_7,
  c_8,
  c_9,
  c_10,
  c_11,
  c_12,
  c_13,
  c_14,
  c_15,
  c_16,
  c_17,
  c_18,
  c_19,
  c_20,
  c_21,
  c_22,
  c_23,
  c_24,
  c_25,
  c_26,
  c_27,
  c_28,
  c_29,
  c_30,
  c_31
};
}  // namespace tt

// tt-metal's DataFormat enumerators; the tile machine holds Float16_b and Float32 CBs.
enum class DataFormat : uint8_t {
  Float32 = 0,
  Float16 = 1,
  Bfp8 = 2,
  Bfp4 = 3,
  Tf32 = 4,
  Float16_b = 5,
  Bfp8_b = 6,
  Bfp4_b = 7,
  Int32 = 8,
  UInt16 = 9,
  Lf8 = 10,
  Bfp2 = 11,
  Int8 = 14,
  Bfp2_b = 15,
  UInt32 = 24,
  UInt8 = 30,
  Invalid = 0xff
};

using tilenorm::tile::cb_pop_front;
using tilenorm::tile::cb_push_back;
using tilenorm::tile::cb_reserve_back;
using tilenorm::tile::cb_wait_front;
using tilenorm::tile::get_arg_val;
using tilenorm::tile::get_common_arg_val;
