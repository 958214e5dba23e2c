// Kernels and helpers shared by the tile machine's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile::test_util {

constexpr uint32_t kIn0 = 0;
constexpr uint32_t kIn1 = 1;
constexpr uint32_t kOut = 16;

// ---------------------------------------------------------------------------------------------
// Shared kernels.

struct IoArgs {
  uint32_t addr;
  uint32_t start;
  uint32_t count;
  uint32_t cb;
};

inline void read_tiles(const IoArgs& a) {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(a.addr, a.cb);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_reserve_back(a.cb, 1);
    noc_async_read_tile(a.start + i, s, get_write_ptr(a.cb));
    noc_async_read_barrier();
    cb_push_back(a.cb, 1);
  }
}

inline void write_tiles(const IoArgs& a) {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(a.addr, a.cb);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_wait_front(a.cb, 1);
    noc_async_write_tile(a.start + i, s, get_read_ptr(a.cb));
    noc_async_write_barrier();
    cb_pop_front(a.cb, 1);
  }
}

struct Read2Args {
  uint32_t addr0;
  uint32_t addr1;
  uint32_t count;  // tiles of each input
};

inline void read_two(const Read2Args& a) {
  const InterleavedAddrGenFast<true> s0 = tile_addr_gen(a.addr0, kIn0);
  const InterleavedAddrGenFast<true> s1 = tile_addr_gen(a.addr1, kIn1);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_reserve_back(kIn0, 1);
    cb_reserve_back(kIn1, 1);
    noc_async_read_tile(i, s0, get_write_ptr(kIn0));
    noc_async_read_tile(i, s1, get_write_ptr(kIn1));
    noc_async_read_barrier();
    cb_push_back(kIn0, 1);
    cb_push_back(kIn1, 1);
  }
}

struct CountArgs {
  uint32_t count;
};

// Hands the acquired dst section to the packer, packs its slot 0 as one page of `cb` and
// releases the section.
inline void commit_and_pack_slot0(uint32_t cb) {
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(cb, 1);
  pack_tile(0, cb);
  cb_push_back(cb, 1);
  tile_regs_release();
}

// out = in0 (copy through dst), tile by tile.
inline void copy_compute(const CountArgs& a) {
  copy_tile_init(kIn0);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_wait_front(kIn0, 1);
    tile_regs_acquire();
    copy_tile(kIn0, 0, 0);
    commit_and_pack_slot0(kOut);
    cb_pop_front(kIn0, 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

inline DeviceConfig small_grid(uint32_t x = 2, uint32_t y = 1) {
  DeviceConfig c;
  c.grid_x = x;
  c.grid_y = y;
  c.host_threads = 1;
  return c;
}

inline std::vector<uint8_t> to_bytes(const std::vector<float>& tiled, DataFormat f) {
  std::vector<uint8_t> b(tiled.size() * datum_size(f));
  encode(tiled.data(), tiled.size(), f, b.data());
  return b;
}

inline std::vector<float> from_bytes(const std::vector<uint8_t>& b, DataFormat f) {
  std::vector<float> v(b.size() / datum_size(f));
  decode(b.data(), v.size(), f, v.data());
  return v;
}

inline Buffer make_buffer(Device& d, const std::vector<float>& tiled, DataFormat f) {
  Buffer b;
  EXPECT_TRUE(d.create_buffer(static_cast<uint32_t>(tiled.size() / kTileElems), f, &b).ok());
  const auto bytes = to_bytes(tiled, f);
  EXPECT_TRUE(d.write_buffer(b, bytes.data(), bytes.size()).ok());
  return b;
}

inline std::vector<float> read_all(Device& d, const Buffer& b) {
  std::vector<uint8_t> bytes(size_t{b.num_pages} * b.page_size());
  EXPECT_TRUE(d.read_buffer(b, bytes.data(), bytes.size()).ok());
  return from_bytes(bytes, b.format);
}

// Random bf16-representable values in [lo, hi), distinct per call.
inline std::vector<float> random_tiles(int tiles, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(tiles) * kTileElems);
  for (float& x : v) x = round_to_bf16(u(rng));
  return v;
}

// One core: read_two -> `compute` -> write_tiles, `count` tiles per input, output format `out`.
template <typename Args>
Status run_single(Device& d, void (*compute)(const Args&), const Args& args, const Buffer& in0,
                  const Buffer& in1, const Buffer& out, uint32_t count, ComputeConfig cfg = {},
                  uint32_t in_pages = 2) {
  Program p(d);
  const CoreCoord core{0, 0};
  TN_RETURN_IF_ERROR(p.create_circular_buffer(core, kIn0, in0.format, in_pages, "in0"));
  TN_RETURN_IF_ERROR(p.create_circular_buffer(core, kIn1, in1.format, in_pages, "in1"));
  TN_RETURN_IF_ERROR(p.create_circular_buffer(core, kOut, out.format, 2, "out"));
  auto r = p.create_kernel(KernelKind::kReader, core, &read_two, "read_two");
  auto c = p.create_kernel(KernelKind::kCompute, core, compute, "compute", cfg);
  auto w = p.create_kernel(KernelKind::kWriter, core, &write_tiles, "write_tiles");
  p.set_runtime_args(r, core, Read2Args{in0.address, in1.address, count});
  p.set_runtime_args(c, core, args);
  p.set_runtime_args(w, core, IoArgs{out.address, 0, out.num_pages, kOut});
  return d.run(p);
}

}  // namespace tilenorm::tile::test_util
