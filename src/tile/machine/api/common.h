// What every kernel API header of the tile machine shares, and the compute kernel's config. The
// kernel API is split by domain as tt-metal splits its kernel headers: cb_api.h (circular
// buffers, every kernel), dataflow_api.h (reader and writer kernels: NoC, L1 pointers; tt-metal's
// dataflow_api.h) and compute/*.h (compute kernels; tt-metal's compute_kernel_api/*.h). A kernel
// file includes only the headers of its own kind: one that includes dataflow_api.h and a
// compute/*.h header does not compile (the #error in each), as on hardware, where each kind is
// built against its own headers. Kernels are plain functions; every call acts on the kernel the
// calling fiber runs, and a call of another kind's API (from a file that defines kernels of both
// kinds, as the machine's own tests do) is a `kernel-api-kind` report. The trailing
// SrcLoc (std::source_location) is filled in by the compiler so reports name the line.
// Semantics per op: docs/tile-machine.md.
#pragma once

#include <array>
#include <cstdint>

#include "common/source_location.h"
#include "tile/machine/tile.h"

namespace tilenorm::tile {

using SrcLoc = SourceLocation;

enum class MathFidelity : uint8_t { LoFi, HiFi2, HiFi3, HiFi4 };

// tt-metal's UnpackToDestMode, one per CB (ComputeConfig::unpack_to_dest_mode).
enum class UnpackToDestMode : uint8_t { Default, UnpackToDestFp32 };

// As tt-metal's ComputeConfig. fp32_dest_acc_en: dst holds fp32 (half the tiles);
// dst_full_sync_en: one section of 16/8 tiles instead of two halves of 8/4. math_fidelity: the
// multiplier phases (DeviceConfig::math_fidelity_phases).
struct ComputeConfig {
  bool fp32_dest_acc_en = false;
  bool dst_full_sync_en = false;
  MathFidelity math_fidelity = MathFidelity::HiFi4;
  // Shorthand for UnpackToDestFp32 on every CB.
  bool unpack_to_dest_fp32 = false;
  // Per CB, as tt-metal's ComputeConfig::unpack_to_dest_mode: copy_tile / unary_bcast from a CB
  // with UnpackToDestFp32 move its fp32 data into dst without the TF32 source-register rounding.
  std::array<UnpackToDestMode, kMaxCbs> unpack_to_dest_mode{};
  bool unpacks_to_dest(uint32_t cb) const {
    return unpack_to_dest_fp32 ||
           (cb < kMaxCbs && unpack_to_dest_mode[cb] == UnpackToDestMode::UnpackToDestFp32);
  }
};

}  // namespace tilenorm::tile
