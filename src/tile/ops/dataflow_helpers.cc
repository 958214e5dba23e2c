#include "tile/ops/dataflow_helpers.h"

#include <cstring>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/dataflow_api.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {

void read_tiles_into(uint32_t cb, const InterleavedAddrGenFast<true>& s, uint32_t first, uint32_t n,
                     uint32_t pages) {
  cb_reserve_back(cb, pages);
  const uint32_t base = get_write_ptr(cb), size = get_tile_size(cb);
  for (uint32_t i = 0; i < n; ++i) noc_async_read_tile(first + i, s, base + i * size);
}

namespace {

// Writes element values of one page given as fp32, in the CB's format.
template <typename F>
void write_page(uint32_t cb, uint32_t page, F&& value_at) {
  const uint32_t size = get_tile_size(cb);
  const uint32_t addr = get_write_ptr(cb) + page * size;
  if (get_dataformat(cb) == DataFormat::Float32) {
    float* p = l1_ptr<float>(addr, kTileElems);
    for (int r = 0; r < kTileDim; ++r)
      for (int c = 0; c < kTileDim; ++c) p[tile_index(r, c)] = value_at(r, c);
  } else {
    uint16_t* p = l1_ptr<uint16_t>(addr, kTileElems);
    for (int r = 0; r < kTileDim; ++r)
      for (int c = 0; c < kTileDim; ++c) p[tile_index(r, c)] = float_to_bf16(value_at(r, c)).bits;
  }
}

}  // namespace

void fill_page(uint32_t cb, uint32_t page, float value) {
  write_page(cb, page, [&](int, int) { return value; });
}

void fill_mask_page(uint32_t cb, uint32_t page, uint32_t mask_w) {
  write_page(cb, page, [&](int, int c) { return uint32_t(c) < mask_w ? 1.0f : 0.0f; });
}

void fill_row_selector_pages(uint32_t cb, uint32_t page) {
  for (int i = 0; i < kTileDim; ++i)
    write_page(cb, page + i, [&](int r, int) { return r == i ? 1.0f : 0.0f; });
}

void push_mask_page(uint32_t cb, uint32_t mask_w) {
  if (mask_w == 0) return;
  cb_reserve_back(cb, 1);
  fill_mask_page(cb, 0, mask_w);
  cb_push_back(cb, 1);
}

void push_fill_page(uint32_t cb, float value) {
  cb_reserve_back(cb, 1);
  fill_page(cb, 0, value);
  cb_push_back(cb, 1);
}

void expand_dense_row(uint32_t dense_cb, uint32_t t, uint32_t out_cb, uint32_t page) {
  const uint32_t size = get_tile_size(out_cb);
  const uint32_t es = size / kTileElems;
  const uint8_t* src = l1_ptr<uint8_t>(get_write_ptr(dense_cb) + (t / kSpanTiles) * size, size);
  uint8_t* dst = l1_ptr<uint8_t>(get_write_ptr(out_cb) + page * size, size);
  const int row = int(t % kSpanTiles);
  // A row is 16 elements in a left face and 16 in a right face.
  const uint8_t* left = src + size_t(tile_index(row, 0)) * es;
  const uint8_t* right = src + size_t(tile_index(row, kFaceDim)) * es;
  for (int r = 0; r < kTileDim; ++r) {
    std::memcpy(dst + size_t(tile_index(r, 0)) * es, left, kFaceDim * es);
    std::memcpy(dst + size_t(tile_index(r, kFaceDim)) * es, right, kFaceDim * es);
  }
}

}  // namespace tilenorm::tile
