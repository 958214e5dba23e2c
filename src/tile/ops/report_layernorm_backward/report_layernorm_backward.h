// The bug report's LayerNorm backward op (upstream tt-train layernorm_bw before its fix) as a
// tile-machine op, with named variants: as reported, each defect alone, the report's two
// proposed fixes, upstream's fix and the full fix. It is kept beside tilenorm's own op so the
// report can be run as written (`tilenorm repro`); docs/layernorm.md, "The report's op".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tile/machine/device.h"
#include "tile/ops/report_layernorm_backward/kernels.h"

namespace tilenorm::tile {

// How the kernel scales the row sums by 1/C.
enum class ReportInvC : uint8_t {
  kTruncatedBf16,  // a bf16 scaler tile made by truncation (as reported: Bug 3)
  kRoundedBf16,    // a bf16 scaler tile rounded to nearest
  kFp32,           // a scaler of 1.0, then 1/C in fp32 on the SFPU
};

struct ReportVariant {
  const char* name;
  const char* summary;
  bool bug1;  // compute_dx: mul_tiles(x̂, s2) onto the slot holding s1
  bool bug2;  // block path: nested tile_regs_acquire in the s2 sum
  ReportSumLoop sum_loop;
  ReportInvC inv_c;
  // The fp32 CBs s1 and s2 reach dst without the TF32 rounding of the source registers
  // (UnpackToDestFp32 for those two CBs); as reported they pass through TF32.
  bool unpack_to_dest_fp32;
  bool meant_correct;  // the variant is meant to be a correct kernel (sanitizer-clean)
};

// Every variant, in the order `tilenorm repro` prints them.
const std::vector<ReportVariant>& report_variants();
// nullptr when no variant has that name.
const ReportVariant* find_report_variant(std::string_view name);

// The report's L1 rule: the fit path when 2048·(3·Wt + ⌈Wt/3⌉·3 + 24) + 8192 <= L1.
bool report_fits_l1(uint32_t wt, uint32_t l1_bytes);

// Host inputs, row-major float: x and dy [rows, C], gamma [C], mean and rstd [rows]. They are
// uploaded as bf16 tiles (round to nearest even), padded with zeros as the hardware pads.
struct ReportBackwardInputs {
  int64_t rows = 0, C = 0;
  const float* x = nullptr;
  const float* dy = nullptr;
  const float* gamma = nullptr;
  const float* mean = nullptr;
  const float* rstd = nullptr;
};

struct ReportBackwardResult {
  std::vector<float> dx;              // [rows, C]
  std::vector<double> dgamma, dbeta;  // [C]: the bf16 components summed over rows on the host
  bool fit = false;                   // the path the L1 rule chose
  bool program_cache_hit = false;     // the program came from the device's program cache
  RunResult run;                      // counters and sanitizer reports
};

// Runs the op on `device` (its DeviceConfig decides L1, grid, numerics and sanitizer). Buffers
// are freed again; the program of a successful run is kept in the device's program cache, keyed
// by the op's attributes (shape, variant, device geometry), so a second call with the same
// attributes only rewrites the runtime args. Returns the machine's error when the run fails
// (sanitizer kError); that program is not cached.
Status report_layernorm_backward(Device& device, const ReportBackwardInputs& in,
                                 const ReportVariant& variant, ReportBackwardResult* out);

}  // namespace tilenorm::tile
