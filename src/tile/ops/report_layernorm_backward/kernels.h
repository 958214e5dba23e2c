// Kernels of the report's LayerNorm backward op and their typed arguments. The variant's
// switches travel in the compute kernel's args (docs/layernorm.md, "The report's op").
#pragma once

#include <cstdint>

namespace tilenorm::tile {

struct ReportBackwardReaderArgs {
  uint32_t x_addr, dy_addr, gamma_addr, mean_addr, rstd_addr;
  uint32_t start_row, num_rows, wt, mask_w, fit;
  uint32_t scaler_bits;  // bf16 bits of the scaler page's value
};

// s1 loop of the report's kernel and the two rewrites the report proposes for it.
enum ReportSumLoop : uint32_t {
  kSumAsReported = 0,  // mul_tiles_bcast_rows accumulating onto slot 0 (correct on Wormhole)
  kSumOption1 = 1,     // into a working slot, then copied (first tile) or added into slot 0
  kSumOption2 = 2,     // block path: per block, the running sum copied in from a CB, repacked
};

struct ReportBackwardComputeArgs {
  uint32_t num_rows, wt, mask_w, fit;
  uint32_t bug1;        // 1: mul_tiles(x̂, s2) lands on the slot still holding s1
  uint32_t bug2;        // 1: the block path's s2 sum nests the x̂ preprocessing's acquire
  uint32_t sum_loop;    // ReportSumLoop
  uint32_t inv_c_bits;  // 0: the scaler page holds 1/C; else fp32 bits of 1/C (scaler = 1.0)
};

struct ReportBackwardWriterArgs {
  uint32_t dx_addr, dgamma_addr, dbeta_addr;
  uint32_t start_row, num_rows, wt;
};

void report_backward_reader(const ReportBackwardReaderArgs& args);
void report_backward_compute(const ReportBackwardComputeArgs& args);
void report_backward_writer(const ReportBackwardWriterArgs& args);

// Source lines of the compute kernel's defects, for tests and `tilenorm repro`.
struct ReportKernelLines {
  uint32_t bug1_mul;      // mul_tiles(x̂, s2) of compute_dx
  uint32_t xhat_acquire;  // tile_regs_acquire of the x̂ preprocessing (Bug 2 nests it)
  uint32_t option1_mul;   // mul_tiles_bcast_rows into the working slot (report's option 1)
};
ReportKernelLines report_kernel_lines();

}  // namespace tilenorm::tile
