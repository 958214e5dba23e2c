// What tt-train's program factories share (upstream's program_utils): the packed bf16 scalar,
// the block size rule and one-format circular buffers of whole tiles.
#pragma once

#include <bit>
#include <cstdint>

#include "tilenorm/tt/host.h"

namespace tilenorm::tt {

// Upstream's pack_two_bfloat16_to_uint32: the float's upper 16 bits (bf16 by truncation, not
// rounding) in both halves of the word, as the kernels' scalar tiles take it.
inline uint32_t pack_two_bfloat16_to_uint32(float value) {
  const uint32_t bf16 = std::bit_cast<uint32_t>(value) >> 16;
  return bf16 | (bf16 << 16);
}

// Upstream's get_block_size: the largest block in [2, max_block_size] that divides num_inner,
// else 1 (kernels that loop over whole blocks rely on it dividing Wt).
inline uint32_t get_block_size(uint32_t num_inner, uint32_t max_block_size) {
  for (uint32_t block = max_block_size; block > 1; --block)
    if (num_inner % block == 0) return block;
  return 1;
}

// A CB of `num_tiles` pages of one tile in `format` on `cores`.
inline void create_cb(Program& program, const CoreRangeSet& cores, uint8_t index, DataFormat format,
                      uint32_t num_tiles) {
  const uint32_t page = tile_size(format);
  CreateCircularBuffer(
      program, cores,
      CircularBufferConfig(num_tiles * page, {{index, format}}).set_page_size(index, page));
}

}  // namespace tilenorm::tt
