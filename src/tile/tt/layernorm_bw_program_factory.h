// tt-train's layernorm_bw program factory on the tt-metal style host API: the op's real reader,
// compute kernel and writer, found in a tt-metal source tree, set up as upstream sets them up
// (CB layout c_0..c_14, the L1 fit rule, block size 3, DO_MASK_W / EVERYTHING_FITS_IN_L1, the
// compile-time and runtime arg orders, the two core groups) and run on the tile machine.
#pragma once

#include <cstdint>
#include <string>

#include "tile/ops/report_layernorm_backward/report_layernorm_backward.h"
#include "tilenorm/tt/host.h"

namespace tilenorm::tt {

// The kernels' paths in a tt-metal tree, as the factory names them.
inline constexpr const char* kLayerNormBwReaderPath =
    "tt-train/sources/ttml/metal/ops/layernorm_bw/device/kernels/dataflow/"
    "reader_layernorm_bw_interleaved_start_id.cpp";
inline constexpr const char* kLayerNormBwWriterPath =
    "tt-train/sources/ttml/metal/ops/layernorm_bw/device/kernels/dataflow/"
    "writer_layernorm_bw_interleaved_start_id.cpp";
inline constexpr const char* kLayerNormBwComputePath =
    "tt-train/sources/ttml/metal/ops/layernorm_bw/device/kernels/compute/layernorm_bw_kernel.cpp";

// OK when `root` holds the three kernels; else InvalidArgument naming the first missing path.
Status check_layernorm_bw_kernels(const std::string& root);

// Logical shape [B, N, S, C] of x and dy (gamma [1, 1, 1, C], mean and rstd [B, N, S, 1]); the
// buffers hold them in tile layout padded to whole tiles.
struct LayerNormBwShape {
  uint32_t B = 1, N = 1, S = 0, C = 0;
};

struct LayerNormBwBuffers {
  const Buffer *input, *gamma, *mean, *rstd, *dL_dout;
  const Buffer *dx, *dgamma_components, *dbeta_components;  // [B, N, S, C] each
};

struct LayerNormBwProgram {
  Program program;
  bool everything_fits_in_l1 = false;
  uint32_t Wt = 0, mask_w = 0, packed_scaler = 0, num_cores = 0;
};

// The factory: InvalidArgument for an empty shape or one whose tile rows do not fit uint32.
Status create_layernorm_bw_program(const Device& device, const LayerNormBwShape& shape,
                                   const LayerNormBwBuffers& buffers, LayerNormBwProgram* out);

// The op around it: uploads the inputs as bf16 tiles (shape [1, 1, rows, C]), runs the program
// from `device.config().kernel_root`, reads dx and sums the dgamma / dbeta components over rows
// on the host (upstream: ttnn::sum). out->run holds the machine's sanitizer reports; the DRAM
// buffers are freed again.
Status run_layernorm_bw(Device& device, const tile::ReportBackwardInputs& in,
                        tile::ReportBackwardResult* out);

}  // namespace tilenorm::tt
