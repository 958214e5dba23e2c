// The rest of tt-train's norm family on the tt-metal style host API: the layernorm_fw, rmsnorm_fw
// and rmsnorm_bw program factories, ported (CB layouts, fit rules, block sizes, defines, the
// compile-time and runtime arg orders, the two core groups), each running the op's real reader,
// compute kernel and writer from a tt-metal source tree on the tile machine. With the
// layernorm_bw factory (layernorm_bw_program_factory.h) they make tt-train's four norm ops.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tilenorm/tt/host.h"

namespace tilenorm::tt {

// The kernels' paths in a tt-metal tree, as the factories name them.
#define TILENORM_TT_TRAIN_OP(op) "tt-train/sources/ttml/metal/ops/" op "/device/kernels/"
inline constexpr const char* kLayerNormFwReaderPath =
    TILENORM_TT_TRAIN_OP("layernorm_fw") "dataflow/reader_layernorm_fw_interleaved_start_id.cpp";
inline constexpr const char* kLayerNormFwWriterPath =
    TILENORM_TT_TRAIN_OP("layernorm_fw") "dataflow/writer_layernorm_fw_interleaved_start_id.cpp";
inline constexpr const char* kLayerNormFwComputePath =
    TILENORM_TT_TRAIN_OP("layernorm_fw") "compute/layernorm_fw_kernel.cpp";
inline constexpr const char* kRmsNormFwReaderPath =
    TILENORM_TT_TRAIN_OP("rmsnorm_fw") "dataflow/reader_rmsnorm_fw_interleaved_start_id.cpp";
inline constexpr const char* kRmsNormFwWriterPath =
    TILENORM_TT_TRAIN_OP("rmsnorm_fw") "dataflow/writer_rmsnorm_fw_interleaved_start_id.cpp";
inline constexpr const char* kRmsNormFwComputePath =
    TILENORM_TT_TRAIN_OP("rmsnorm_fw") "compute/rmsnorm_fw_kernel.cpp";
inline constexpr const char* kRmsNormBwReaderPath =
    TILENORM_TT_TRAIN_OP("rmsnorm_bw") "dataflow/reader_rmsnorm_bw_interleaved_start_id.cpp";
inline constexpr const char* kRmsNormBwWriterPath =
    TILENORM_TT_TRAIN_OP("rmsnorm_bw") "dataflow/writer_rmsnorm_bw_interleaved_start_id.cpp";
inline constexpr const char* kRmsNormBwComputePath =
    TILENORM_TT_TRAIN_OP("rmsnorm_bw") "compute/rmsnorm_bw_kernel.cpp";
#undef TILENORM_TT_TRAIN_OP

enum class TtNormOp { kLayerNormFw, kLayerNormBw, kRmsNormFw, kRmsNormBw };
const char* tt_norm_op_name(TtNormOp op);  // "layernorm_fw", ...

// OK when `root` holds the op's reader, compute kernel and writer; else InvalidArgument naming
// the first missing path.
Status check_tt_norm_kernels(const std::string& root, TtNormOp op);

// The factories' choices for one shape, for tests and reports.
struct TtNormPlan {
  uint32_t Wt = 0, mask_w = 0, block_size = 0, num_cores = 0;
  bool everything_fits_in_l1 = false;
  bool everything_except_gamma_fits_in_l1 = false;  // rmsnorm_fw only
};

// The buffers of each op: x and dy [rows, C]; gamma and beta [C]; the per-row statistics
// [rows, 1] (mean, rstd, rms) in column 0 of their tiles; every buffer bf16 in tile layout.
struct LayerNormFwBuffers {
  const Buffer *input, *gamma, *beta, *output, *mean, *rstd;
};
struct RmsNormFwBuffers {
  const Buffer *input, *gamma, *output, *rms;
};
struct RmsNormBwBuffers {
  const Buffer *input, *gamma, *rms, *dL_dout, *dL_da, *dL_dgamma_components;
};

// The factories, on logical shape [1, 1, rows, C] (mean / rstd and rms returned as upstream's
// return_mean_rstd / return_intermediates ask). InvalidArgument for an empty shape or one past
// uint32 tile rows; the program's builder error otherwise.
Status create_layernorm_fw_program(const Device& device, uint32_t rows, uint32_t C, float eps,
                                   const LayerNormFwBuffers& buffers, Program* program,
                                   TtNormPlan* plan);
Status create_rmsnorm_fw_program(const Device& device, uint32_t rows, uint32_t C, float eps,
                                 const RmsNormFwBuffers& buffers, Program* program,
                                 TtNormPlan* plan);
Status create_rmsnorm_bw_program(const Device& device, uint32_t rows, uint32_t C,
                                 const RmsNormBwBuffers& buffers, Program* program,
                                 TtNormPlan* plan);

// One op's host-side inputs, row-major floats (rounded to bf16 on upload): x [rows, C], dy
// [rows, C] (backward), gamma and beta [C] (beta: layernorm_fw), mean and rstd [rows]
// (layernorm_bw), rms [rows] (rmsnorm_bw: sqrt(mean(x^2) + eps), as rmsnorm_fw returns it).
struct TtNormInputs {
  int64_t rows = 0, C = 0;
  float eps = 1e-5f;
  const float *x = nullptr, *dy = nullptr, *gamma = nullptr, *beta = nullptr;
  const float *mean = nullptr, *rstd = nullptr, *rms = nullptr;
};

// Its outputs: y or dx [rows, C]; mean, rstd, rms [rows] (forward); dgamma, dbeta [C], the
// per-row components summed over rows on the host as upstream does after the op.
struct TtNormOutputs {
  std::vector<float> y, dx, mean, rstd, rms;
  std::vector<double> dgamma, dbeta;
  TtNormPlan plan;
  RunReport report;  // the run's sanitizer findings and JIT counters
};

// Runs `op` on `device` from `device.config().kernel_root` (a tt-metal tree); the DRAM buffers are
// freed again. Errors: a bad shape or missing input, a missing kernel (its path), a compile
// error, a deadlock, and with SanitizerMode::kError the first finding.
Status run_tt_norm_op(Device& device, TtNormOp op, const TtNormInputs& in, TtNormOutputs* out);

}  // namespace tilenorm::tt
