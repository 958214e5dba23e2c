// Internal to the kernel API's implementation, which is cut as api/ is: cb.cc (cb_api.h and the
// CB pointers and L1 access of dataflow_api.h), noc.cc (the NoC of dataflow_api.h), dst.cc
// (compute/reg_api.h, pack.h, tile_move_copy.h, reconfig_data_format.h), fpu.cc (eltwise_binary.h,
// bcast.h, reduce.h, matmul.h), sfpu.cc (eltwise_binary_sfpu.h, eltwise_unary.h, mask.h) and
// sanitizer.cc (reports, the sanitizer's checks and compute/sanitizer.h). What they share: the
// running kernel, the domain check, CB windows and L1 access, dst slots, unpack and store, and
// the face layout. Kernels never include it.
#pragma once

#include <cstdint>

#include "tile/machine/api/common.h"
#include "tile/machine/machine.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile::detail {

// ---- The running kernel.

inline KernelRuntime& current() {
  TN_CHECK(t_kernel != nullptr, "a kernel API function was called outside a running kernel");
  return *t_kernel;
}

// The kernel API domains; a kernel may call only its own kind's (tt-metal compiles a reader or
// writer against dataflow_api.h and a compute kernel against compute_kernel_api/, so a call of
// the other domain does not compile there). A kernel file that includes both does not compile
// here either; the run-time check catches the files that may (the machine's own tests).
enum class Domain : uint8_t { kDataflow, kCompute };

// A `kernel-api-kind` report when the running kernel is not of `domain` (sanitizer.cc).
void check_domain(KernelRuntime& k, Domain domain, const char* op, const SrcLoc& loc);

// ---- CBs and L1 (cb.cc).

// The CB `cb` of this core; a fatal `cb-unknown` report when it does not exist.
CbState& cb_of(KernelRuntime& k, uint32_t cb, const char* op, const SrcLoc& loc);
// Makes this kernel the CB's producer (or consumer); a report when another kernel is.
void claim(KernelRuntime& k, CbState& c, uint32_t cb, bool producer, const char* op,
           const SrcLoc& loc);
// The CB holding [addr, addr + bytes) when it lies inside a window this kernel holds; -1 if not.
int window_of(const KernelRuntime& k, uint32_t addr, uint32_t bytes);
// Host pointer to L1 [addr, addr + bytes) of this core, checked against the kernel's windows.
uint8_t* l1_host(KernelRuntime& k, uint32_t addr, uint32_t bytes, const char* op,
                 const SrcLoc& loc);
// Whether the bytes hold the poison the machine fills unwritten L1 with.
bool has_poison(const uint8_t* p, uint32_t bytes, DataFormat format);

// ---- NoC (noc.cc): what the barriers do, also run at kernel end.

void complete_reads(KernelRuntime& k);
void complete_writes(KernelRuntime& k, const SrcLoc& loc);

// ---- Dst and the unpacker (dst.cc).

inline Dst& dst_of(KernelRuntime& k) { return *k.core->dst; }
// Physical dst tile of index idst in the math (or pack) section.
uint32_t dst_slot(KernelRuntime& k, uint32_t idst, bool math, const char* op, const SrcLoc& loc);
// A tile of a CB's waited window as fp32 values. `tf32`: the value passes the FPU source
// registers (TF32 for fp32 data in faithful mode).
void unpack(KernelRuntime& k, uint32_t cb, uint32_t itile, bool tf32, const char* op,
            const SrcLoc& loc, float* out);

inline void count(KernelRuntime& k, TileOpKind kind) {
  ++k.core->counters.tile_ops[static_cast<int>(kind)];
}

inline float round_tf32(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;
  u += 0x0fffu + ((u >> 13) & 1u);
  return float_from_bits(u & ~0x1fffu);
}

// fp32 -> bf16 (nearest even) -> fp32, NaN kept quiet; branch-free for the whole-tile loops.
inline float round_bf16(float x) {
  const uint32_t u = float_bits(x);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  return float_from_bits(nan ? ((u & 0xffff0000u) | 0x00400000u) : r);
}

inline float dst_round(bool bf16_dst, float x) { return bf16_dst ? round_bf16(x) : x; }

// Stores v into dst (rounded to bf16 when dst is 16-bit in faithful mode).
template <typename F>
void store_tile(KernelRuntime& k, uint32_t phys, F&& value_of) {
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  if (k.core->dst_bf16) {
    for (int i = 0; i < kTileElems; ++i) out[i] = round_bf16(value_of(i, out[i]));
  } else {
    for (int i = 0; i < kTileElems; ++i) out[i] = value_of(i, out[i]);
  }
}

// Element (row, col) positions of the face layout, for broadcasts, reduce and matmul.
struct Layout {
  uint16_t row[kTileElems];
  uint16_t col[kTileElems];
  uint16_t index[kTileDim][kTileDim];
  constexpr Layout() : row(), col(), index() {
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) {
        const int i = tile_index(r, c);
        row[i] = static_cast<uint16_t>(r);
        col[i] = static_cast<uint16_t>(c);
        index[r][c] = static_cast<uint16_t>(i);
      }
    }
  }
};
inline constexpr Layout kLayout;

// ---- The sanitizer's bookkeeping of dst slots (sanitizer.cc).

const char* origin_name(Origin o);
// A read of the slot's value (a `poison-dst-read` report when nothing wrote it).
void note_read(KernelRuntime& k, uint32_t phys, uint32_t idst, const char* op, const SrcLoc& loc);
// An assigning write (a `dead-store` report when the old value was never read).
void note_assign(KernelRuntime& k, uint32_t phys, uint32_t idst, Origin origin, const char* op,
                 const SrcLoc& loc);
// An accumulating write, dst += result (an `implicit-accumulation` report unless the slot is
// zero, declared, or the open chain of the same op).
void note_accumulate(KernelRuntime& k, uint32_t phys, uint32_t idst, Origin chain, const char* op,
                     uint32_t cb0, uint32_t cb1, const SrcLoc& loc);
// The running-sum lint of a pack_tile into page `page` of CB `ocb` from slot idst.
void lint_running_sum(KernelRuntime& k, CbState& c, uint32_t ocb, uint32_t page, uint32_t phys,
                      uint32_t idst, const SrcLoc& loc);

}  // namespace tilenorm::tile::detail
