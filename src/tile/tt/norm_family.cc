// tt-train's layernorm_fw, rmsnorm_fw and rmsnorm_bw program factories, ported onto the tt-metal
// style host API, and one runner for the four norm ops. The CB indices, page counts, arg orders
// and rules are upstream's; the code is tilenorm's.

#include "tile/tt/norm_family.h"

#include <fmt/format.h>

#include <filesystem>
#include <limits>
#include <utility>

#include "tile/tt/host_internal.h"
#include "tile/tt/layernorm_bw_program_factory.h"
#include "tile/tt/program_utils.h"

namespace tilenorm::tt {

namespace {

constexpr uint32_t kTile = 32;
constexpr DataFormat kBf16 = DataFormat::Float16_b, kFp32 = DataFormat::Float32;
const uint64_t kBf16Tile = tile_size(kBf16), kFp32Tile = tile_size(kFp32);

// Every factory: a non-empty [1, 1, rows, C] whose tile rows fit uint32.
Status check_shape(const char* op, uint32_t rows, uint32_t C) {
  if (rows == 0 || C == 0)
    return Status::invalid_argument(fmt::format("{}: empty shape [{}, {}]", op, rows, C));
  return {};
}

// What the factories share: Wt, mask_w, the split and the per-core loop of runtime args.
struct Common {
  uint32_t Wt, mask_w, rows_total;
  WorkSplit split;
  uint64_t available;  // L1 above the allocator base
  Common(const Device& device, uint32_t rows, uint32_t C)
      : Wt((C + kTile - 1) / kTile),
        mask_w(C % kTile),
        rows_total((rows + kTile - 1) / kTile),
        split(split_work_to_cores(device.compute_with_storage_grid_size(), rows_total)),
        available(uint64_t(device.l1_size_per_core()) - device.base_allocator_addr()) {}
  // One compute kernel per core group with its row count first in `args`.
  void compute_kernels(Program& program, const char* path, std::vector<uint32_t> args,
                       const Defines& defines) const {
    const std::pair<const CoreRangeSet*, uint32_t> groups[] = {
        {&split.core_group_1, split.units_per_core_group_1},
        {&split.core_group_2, split.units_per_core_group_2}};
    for (const auto& [group, rows] : groups) {
      if (group->empty()) continue;
      args[0] = rows;
      CreateKernel(program, path, *group,
                   ComputeConfig{.math_fidelity = MathFidelity::HiFi4,
                                 .fp32_dest_acc_en = true,
                                 .math_approx_mode = false,
                                 .compile_args = args,
                                 .defines = defines});
    }
  }
  // Core i = {i / grid.y, i % grid.y} takes the next rows of its group's count.
  template <typename F>
  void per_core(const Device& device, F&& set_args) const {
    const uint32_t grid_y = device.compute_with_storage_grid_size().y;
    for (uint32_t i = 0, start = 0; i < split.num_cores; ++i) {
      const CoreCoord core{i / grid_y, i % grid_y};
      const uint32_t rows = split.core_group_1.contains(core) ? split.units_per_core_group_1
                                                              : split.units_per_core_group_2;
      set_args(core, start, rows);
      start += rows;
    }
  }
  void fill(TtNormPlan* plan, uint32_t block, bool fit) const {
    *plan = {.Wt = Wt,
             .mask_w = mask_w,
             .block_size = block,
             .num_cores = split.num_cores,
             .everything_fits_in_l1 = fit};
  }
};

}  // namespace

const char* tt_norm_op_name(TtNormOp op) {
  switch (op) {
    case TtNormOp::kLayerNormFw:
      return "layernorm_fw";
    case TtNormOp::kLayerNormBw:
      return "layernorm_bw";
    case TtNormOp::kRmsNormFw:
      return "rmsnorm_fw";
    case TtNormOp::kRmsNormBw:
      return "rmsnorm_bw";
  }
  return "?";
}

Status check_tt_norm_kernels(const std::string& root, TtNormOp op) {
  const char* const paths[4][3] = {
      {kLayerNormFwReaderPath, kLayerNormFwComputePath, kLayerNormFwWriterPath},
      {kLayerNormBwReaderPath, kLayerNormBwComputePath, kLayerNormBwWriterPath},
      {kRmsNormFwReaderPath, kRmsNormFwComputePath, kRmsNormFwWriterPath},
      {kRmsNormBwReaderPath, kRmsNormBwComputePath, kRmsNormBwWriterPath}};
  for (const char* path : paths[int(op)]) {
    const std::filesystem::path p = std::filesystem::path(root) / path;
    if (!std::filesystem::is_regular_file(p))
      return Status::invalid_argument(
          fmt::format("{} does not hold tt-train's {} kernels ({} not found)", root,
                      tt_norm_op_name(op), p.string()));
  }
  return {};
}

// layernorm_fw: block size 3; CBs c_0 scaler, c_1 mask, c_2 eps, c_3 gamma, c_4 beta, c_5 x,
// c_6 y, c_7 mean, c_8 rstd, c_9 sum, c_10 mean bcast, c_11 variance sum, c_12 rstd bcast, c_13
// x_hat, c_14 x_hat * gamma.
Status create_layernorm_fw_program(const Device& device, uint32_t rows, uint32_t C, float eps,
                                   const LayerNormFwBuffers& b, Program* program,
                                   TtNormPlan* plan) {
  if (Status s = check_shape("layernorm_fw", rows, C); !s.ok()) return s;
  constexpr uint32_t kBlock = 3;
  const Common k(device, rows, C);
  const uint32_t Wt = k.Wt, wt_blocks = (Wt + kBlock - 1) / kBlock * kBlock;
  // Upstream's fits_in_l1_check (with return_mean_rstd): the sums are sized as fp32 tiles.
  const uint64_t required =
      (3 + 3ull * Wt + 2 * kBlock + 3 + wt_blocks + kBlock + 2) * kBf16Tile + 2 * kFp32Tile;
  const bool fit = required <= k.available;
  k.fill(plan, kBlock, fit);
  *program = CreateProgram();
  Program& p = *program;
  const CoreRangeSet& cores = k.split.all_cores;
  const uint32_t row_tiles = fit ? Wt : 2 * kBlock;
  for (const auto& [index, pages] :
       std::initializer_list<std::pair<uint8_t, uint32_t>>{{0, 1},
                                                           {1, 1},
                                                           {2, 1},
                                                           {3, row_tiles},
                                                           {4, row_tiles},
                                                           {5, row_tiles},
                                                           {6, 2 * kBlock},
                                                           {7, 1},
                                                           {8, 1},
                                                           {10, 1},
                                                           {12, 1},
                                                           {13, fit ? wt_blocks : 2 * kBlock},
                                                           {14, kBlock}})
    create_cb(p, cores, index, kBf16, pages);
  // c_9 and c_11 hold bf16 data in pages upstream sizes as fp32 tiles; the machine keeps one
  // tile per page, so they are one bf16 tile here (the fit rule above counts upstream's bytes).
  create_cb(p, cores, 9, kBf16, 1);
  create_cb(p, cores, 11, kBf16, 1);

  Defines defines;
  if (k.mask_w != 0) defines["DO_MASK_W"] = "1";
  if (fit) defines["EVERYTHING_FITS_IN_L1"] = "1";
  defines["RETURN_MEAN_RSTD"] = "1";
  std::vector<uint32_t> reader_ct{pack_two_bfloat16_to_uint32(1.0f / float(C)),
                                  pack_two_bfloat16_to_uint32(eps), kBlock, k.mask_w, Wt};
  for (const Buffer* buffer : {b.input, b.gamma, b.beta})
    TensorAccessorArgs(buffer).append_to(reader_ct);
  const KernelHandle reader =
      CreateKernel(p, kLayerNormFwReaderPath, cores, ReaderDataMovementConfig(reader_ct, defines));
  std::vector<uint32_t> writer_ct{kBlock, Wt};
  for (const Buffer* buffer : {b.output, b.mean, b.rstd})
    TensorAccessorArgs(buffer).append_to(writer_ct);
  const KernelHandle writer =
      CreateKernel(p, kLayerNormFwWriterPath, cores, WriterDataMovementConfig(writer_ct, defines));
  k.compute_kernels(p, kLayerNormFwComputePath, {0, kBlock, k.mask_w, Wt}, defines);
  k.per_core(device, [&](CoreCoord core, uint32_t start, uint32_t n) {
    SetRuntimeArgs(p, reader, core,
                   {b.input->address(), b.gamma->address(), b.beta->address(), start, n});
    SetRuntimeArgs(p, writer, core,
                   {b.output->address(), b.mean->address(), b.rstd->address(), start, n});
  });
  return p.status();
}

// rmsnorm_fw: block size the largest of 3, 2 dividing Wt (else 1); CBs c_0 x, c_1 mask, c_2
// scaler, c_3 eps, c_4 gamma, c_5..c_7 fp32 (sum of squares, rms, 1/rms), c_8 y, c_9 rms out,
// c_10 x * gamma.
Status create_rmsnorm_fw_program(const Device& device, uint32_t rows, uint32_t C, float eps,
                                 const RmsNormFwBuffers& b, Program* program, TtNormPlan* plan) {
  if (Status s = check_shape("rmsnorm_fw", rows, C); !s.ok()) return s;
  const Common k(device, rows, C);
  const uint32_t Wt = k.Wt, block = get_block_size(Wt, 3);
  const uint64_t required = (2ull * Wt + 3 + 4 * block + 2) * kBf16Tile + 6 * kFp32Tile;
  const bool fit = required <= k.available;
  const bool fit_but_gamma = required - Wt * kBf16Tile + 2 * block * kBf16Tile <= k.available;
  k.fill(plan, block, fit);
  plan->everything_except_gamma_fits_in_l1 = fit_but_gamma;
  *program = CreateProgram();
  Program& p = *program;
  const CoreRangeSet& cores = k.split.all_cores;
  for (const auto& [index, format, pages] :
       std::initializer_list<std::tuple<uint8_t, DataFormat, uint32_t>>{
           {0, kBf16, fit || fit_but_gamma ? Wt : 2 * block},
           {1, kBf16, 1},
           {2, kBf16, 1},
           {3, kBf16, 1},
           {4, kBf16, fit ? Wt : 2 * block},
           {5, kFp32, 2},
           {6, kFp32, 2},
           {7, kFp32, 2},
           {8, kBf16, 2 * block},
           {9, kBf16, 2},
           {10, kBf16, 2 * block}})
    create_cb(p, cores, index, format, pages);

  Defines defines;
  if (k.mask_w != 0) defines["DO_MASK_W"] = "1";
  if (fit) defines["EVERYTHING_FITS_IN_L1"] = "1";
  if (fit_but_gamma) defines["EVERYTHING_EXCEPT_GAMMA_FITS_IN_L1"] = "1";
  defines["RETURN_RMS"] = "1";
  defines["REDUCE_OP"] = "PoolType::SUM";
  defines["REDUCE_DIM"] = "ReduceDim::REDUCE_ROW";
  // The reader reads its accessors from arg 5 on (upstream's factory of that reader appends
  // them); the writer addresses its buffers itself.
  std::vector<uint32_t> reader_ct{pack_two_bfloat16_to_uint32(1.0f / float(C)),
                                  pack_two_bfloat16_to_uint32(eps), k.mask_w, Wt, block};
  for (const Buffer* buffer : {b.input, b.gamma}) TensorAccessorArgs(buffer).append_to(reader_ct);
  const KernelHandle reader =
      CreateKernel(p, kRmsNormFwReaderPath, cores, ReaderDataMovementConfig(reader_ct, defines));
  const KernelHandle writer =
      CreateKernel(p, kRmsNormFwWriterPath, cores, WriterDataMovementConfig({Wt, block}, defines));
  k.compute_kernels(p, kRmsNormFwComputePath, {0, block, Wt}, defines);
  // Runtime args: the row count before the start row.
  k.per_core(device, [&](CoreCoord core, uint32_t start, uint32_t n) {
    SetRuntimeArgs(p, reader, core, {b.input->address(), b.gamma->address(), n, start});
    SetRuntimeArgs(p, writer, core, {b.output->address(), b.rms->address(), n, start});
  });
  return p.status();
}

// rmsnorm_bw: block size 2 when it divides Wt, else 1; CBs c_0 x, c_1 mask, c_2 scaler, c_3
// gamma, c_4 rms, c_5 dy, c_6 the matmul row-reduce tile, c_7 dx, c_8 dgamma components, c_9
// 1/rms bcast, c_10 scale (fp32), c_11 scale bcast (fp32).
Status create_rmsnorm_bw_program(const Device& device, uint32_t rows, uint32_t C,
                                 const RmsNormBwBuffers& b, Program* program, TtNormPlan* plan) {
  if (Status s = check_shape("rmsnorm_bw", rows, C); !s.ok()) return s;
  const Common k(device, rows, C);
  const uint32_t Wt = k.Wt, block = get_block_size(Wt, 2);
  const uint64_t required = (4ull * Wt + 1 + 1 + 2 + 1 + 2 * block + 1) * kBf16Tile + 3 * kFp32Tile;
  const bool fit = required <= k.available;
  k.fill(plan, block, fit);
  *program = CreateProgram();
  Program& p = *program;
  const CoreRangeSet& cores = k.split.all_cores;
  const uint32_t row_tiles = fit ? Wt : 2 * block;
  for (const auto& [index, format, pages] :
       std::initializer_list<std::tuple<uint8_t, DataFormat, uint32_t>>{{0, kBf16, row_tiles},
                                                                        {1, kBf16, 1},
                                                                        {2, kBf16, 1},
                                                                        {3, kBf16, row_tiles},
                                                                        {4, kBf16, 2},
                                                                        {5, kBf16, row_tiles},
                                                                        {6, kBf16, 1},
                                                                        {7, kBf16, row_tiles},
                                                                        {8, kBf16, row_tiles},
                                                                        {9, kBf16, 1},
                                                                        {10, kFp32, 2},
                                                                        {11, kFp32, 1}})
    create_cb(p, cores, index, format, pages);

  Defines defines;
  if (k.mask_w != 0) defines["DO_MASK_W"] = "1";
  if (fit) defines["EVERYTHING_FITS_IN_L1"] = "1";
  const KernelHandle reader = CreateKernel(
      p, kRmsNormBwReaderPath, cores,
      ReaderDataMovementConfig({pack_two_bfloat16_to_uint32(1.0f / float(C)), block, k.mask_w, Wt},
                               defines));
  const KernelHandle writer =
      CreateKernel(p, kRmsNormBwWriterPath, cores, WriterDataMovementConfig({block, Wt}, defines));
  k.compute_kernels(p, kRmsNormBwComputePath, {0, block, k.mask_w, Wt}, defines);
  k.per_core(device, [&](CoreCoord core, uint32_t start, uint32_t n) {
    SetRuntimeArgs(
        p, reader, core,
        {b.input->address(), b.gamma->address(), b.rms->address(), b.dL_dout->address(), n, start});
    SetRuntimeArgs(p, writer, core,
                   {b.dL_da->address(), b.dL_dgamma_components->address(), n, start});
  });
  return p.status();
}

Status run_tt_norm_op(Device& device, TtNormOp op, const TtNormInputs& in, TtNormOutputs* out) {
  const char* name = tt_norm_op_name(op);
  if (in.rows <= 0 || in.C <= 0 || in.rows > std::numeric_limits<uint32_t>::max() ||
      in.C > std::numeric_limits<uint32_t>::max())
    return Status::invalid_argument(
        fmt::format("{}: shape [{}, {}] (both in 1..2^32 - 1)", name, in.rows, in.C));
  const bool backward = op == TtNormOp::kLayerNormBw || op == TtNormOp::kRmsNormBw;
  const bool layer = op == TtNormOp::kLayerNormFw || op == TtNormOp::kLayerNormBw;
  auto need = [&](const float* p, const char* what) {
    return p != nullptr ? Status()
                        : Status::invalid_argument(fmt::format("{}: no {} given", name, what));
  };
  Status s = need(in.x, "x");
  if (s.ok()) s = need(in.gamma, "gamma");
  if (s.ok() && backward) s = need(in.dy, "dy");
  if (s.ok() && op == TtNormOp::kLayerNormFw) s = need(in.beta, "beta");
  if (s.ok() && op == TtNormOp::kLayerNormBw) s = need(in.mean, "mean");
  if (s.ok() && op == TtNormOp::kLayerNormBw) s = need(in.rstd, "rstd");
  if (s.ok() && op == TtNormOp::kRmsNormBw) s = need(in.rms, "rms");
  if (s.ok()) s = check_tt_norm_kernels(device.config().kernel_root, op);
  if (!s.ok()) return s;

  tile::Device& m = machine(device);
  const uint64_t mark = m.dram_mark();
  const int64_t R = in.rows, C = in.C;
  const uint32_t row_tiles = uint32_t((R + kTile - 1) / kTile),
                 Wt = uint32_t((C + kTile - 1) / kTile);
  // Every buffer bf16 (tt-train's norm ops take and give bf16).
  auto create = [&](uint32_t pages, Buffer* buffer) {
    const uint32_t page = tile_size(kBf16);
    return s.ok() ? device.CreateBuffer({pages * page, page, kBf16}, buffer) : s;
  };
  auto write = [&](const Buffer& buffer, const float* v, int64_t rows, int64_t cols) {
    return s.ok() ? device.WriteTiles(buffer, v, rows, cols) : s;
  };
  auto read = [&](const Buffer& buffer, int64_t rows, int64_t cols, std::vector<float>* v) {
    v->resize(size_t(rows * cols));
    return s.ok() ? device.ReadTiles(buffer, rows, cols, v->data()) : s;
  };
  // Upstream sums the per-row parameter-gradient components on the host after the op.
  auto sum_rows = [&](const Buffer& buffer, std::vector<double>* sum) {
    std::vector<float> comp;
    s = read(buffer, R, C, &comp);
    sum->assign(size_t(C), 0.0);
    for (int64_t r = 0; r < R && s.ok(); ++r)
      for (int64_t c = 0; c < C; ++c) (*sum)[size_t(c)] += comp[size_t(r * C + c)];
  };
  Buffer x, dy, gamma, beta, mean, rstd, out_rows, comp1, comp2;
  s = create(row_tiles * Wt, &x);
  s = create(Wt, &gamma);
  s = create(row_tiles * Wt, &out_rows);  // y or dx
  s = write(x, in.x, R, C);
  s = write(gamma, in.gamma, 1, C);
  if (backward) {
    s = create(row_tiles * Wt, &dy);
    s = create(row_tiles * Wt, &comp1);
    s = write(dy, in.dy, R, C);
  }
  Program program;
  const uint32_t rows = uint32_t(R), cols = uint32_t(C);
  switch (op) {
    case TtNormOp::kLayerNormFw:
      s = create(Wt, &beta);
      s = create(row_tiles, &mean);
      s = create(row_tiles, &rstd);
      s = write(beta, in.beta, 1, C);
      if (s.ok())
        s = create_layernorm_fw_program(device, rows, cols, in.eps,
                                        {&x, &gamma, &beta, &out_rows, &mean, &rstd}, &program,
                                        &out->plan);
      break;
    case TtNormOp::kRmsNormFw:
      s = create(row_tiles, &rstd);
      if (s.ok())
        s = create_rmsnorm_fw_program(device, rows, cols, in.eps, {&x, &gamma, &out_rows, &rstd},
                                      &program, &out->plan);
      break;
    case TtNormOp::kRmsNormBw:
      s = create(row_tiles, &rstd);
      s = write(rstd, in.rms, R, 1);
      if (s.ok())
        s = create_rmsnorm_bw_program(
            device, rows, cols, {&x, &gamma, &rstd, &dy, &out_rows, &comp1}, &program, &out->plan);
      break;
    case TtNormOp::kLayerNormBw: {
      s = create(row_tiles, &mean);
      s = create(row_tiles, &rstd);
      s = create(row_tiles * Wt, &comp2);
      s = write(mean, in.mean, R, 1);
      s = write(rstd, in.rstd, R, 1);
      LayerNormBwProgram p;
      if (s.ok())
        s = create_layernorm_bw_program(device, {1, 1, rows, cols},
                                        {&x, &gamma, &mean, &rstd, &dy, &out_rows, &comp1, &comp2},
                                        &p);
      program = std::move(p.program);
      out->plan = {.Wt = p.Wt,
                   .mask_w = p.mask_w,
                   .block_size = 3,
                   .num_cores = p.num_cores,
                   .everything_fits_in_l1 = p.everything_fits_in_l1};
      break;
    }
  }
  if (s.ok()) s = RunProgram(device, program, &out->report);
  if (!backward) {
    s = read(out_rows, R, C, &out->y);
    if (layer) s = read(mean, R, 1, &out->mean);
    s = read(rstd, R, 1, layer ? &out->rstd : &out->rms);
  } else {
    s = read(out_rows, R, C, &out->dx);
    if (s.ok()) sum_rows(comp1, &out->dgamma);
    if (s.ok() && layer) sum_rows(comp2, &out->dbeta);
  }
  m.free_buffers_since(mark);
  return s;
}

}  // namespace tilenorm::tt
