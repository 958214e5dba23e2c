// Kernels of the report's LayerNorm backward op: tt-metal dialect sources in tt/ (reader.cpp,
// compute.cpp, writer.cpp), run through the kernel JIT; the variant's switches are the compute
// kernel's defines (docs/layernorm.md, "The report's op").
#pragma once

#include <cstdint>

namespace tilenorm::tile {

// s1 loop of the report's kernel and the two rewrites the report proposes for it (the compute
// kernel's REPORT_SUM_LOOP).
enum ReportSumLoop : uint32_t {
  kSumAsReported = 0,  // mul_tiles_bcast_rows accumulating onto slot 0 (correct on Wormhole)
  kSumOption1 = 1,     // into a working slot, then copied (first tile) or added into slot 0
  kSumOption2 = 2,     // block path: per block, the running sum copied in from a CB, repacked
};

// Source lines of the compute kernel's defects, for tests and `tilenorm repro`.
struct ReportKernelLines {
  uint32_t bug1_mul;      // mul_tiles(x̂, s2) of compute_dx
  uint32_t xhat_acquire;  // tile_regs_acquire of the x̂ preprocessing (Bug 2 nests it)
  uint32_t option1_mul;   // mul_tiles_bcast_rows into the working slot (report's option 1)
};
ReportKernelLines report_kernel_lines();

}  // namespace tilenorm::tile
