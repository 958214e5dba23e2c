#include "tile/ops/report_layernorm_backward/report_layernorm_backward.h"

#include <algorithm>
#include <bit>
#include <fstream>
#include <map>
#include <string>
#include <utility>

#include "tile/machine/api/tensor_accessor.h"
#include "tile/ops/op_host.h"
#include "tile/ops/report_layernorm_backward/cbs.h"
#include "tile/ops/report_layernorm_backward/kernels.h"
#include "tile/tt/jit.h"
#include "tile/tt/jit_config.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {

namespace cb = report_layernorm_backward_cb;

const std::vector<ReportVariant>& report_variants() {
  using enum ReportInvC;
  static const std::vector<ReportVariant> variants = {
      {"as-reported", "the kernel the report ran: Bugs 1, 2 and 3", true, true, kSumAsReported,
       kTruncatedBf16, false, false},
      {"bug1-only", "full-fix with Bug 1 put back (mul_tiles(x̂, s2) onto s1)", true, false,
       kSumAsReported, kFp32, true, false},
      {"bug2-only", "full-fix with Bug 2 put back (nested acquire in the block-path s2 sum)", false,
       true, kSumAsReported, kFp32, true, false},
      {"bug3-only", "full-fix with Bug 3 put back (1/C as a truncated bf16 scaler)", false, false,
       kSumAsReported, kTruncatedBf16, true, true},
      {"report-option-1",
       "as-reported with the report's option 1: products into a working slot, copied or added "
       "into the sum",
       true, true, kSumOption1, kTruncatedBf16, false, false},
      {"report-option-2",
       "as-reported with the report's option 2: the block-path s1 sum carried through "
       "cb_accumulate",
       true, true, kSumOption2, kTruncatedBf16, false, false},
      {"upstream-fix", "as-reported with upstream's fix: s1's slot zeroed, no nested acquire",
       false, false, kSumAsReported, kTruncatedBf16, false, true},
      {"rounded-inv-c", "upstream-fix with 1/C rounded to nearest bf16 instead of truncated", false,
       false, kSumAsReported, kRoundedBf16, false, true},
      {"full-fix", "upstream-fix with 1/C in fp32 and s1/s2 unpacked to dst without TF32", false,
       false, kSumAsReported, kFp32, true, true},
  };
  return variants;
}

const ReportVariant* find_report_variant(std::string_view name) {
  for (const ReportVariant& v : report_variants())
    if (name == v.name) return &v;
  return nullptr;
}

bool report_fits_l1(uint32_t wt, uint32_t l1_bytes) {
  const uint64_t wt3 = (uint64_t(wt) + cb::kBlock - 1) / cb::kBlock * cb::kBlock;
  return 2048ull * (3ull * wt + wt3 + 24) + 8192 <= l1_bytes;
}

namespace {

// The report's CB list and page counts (c_15 only for option 2).
std::vector<CbDesc> report_cbs(uint32_t wt, bool fit, bool option2) {
  const DataFormat b16 = DataFormat::Float16_b, f32 = DataFormat::Float32;
  const uint32_t wt3 = (wt + cb::kBlock - 1) / cb::kBlock * cb::kBlock;
  const uint32_t row = fit ? wt : 2 * cb::kBlock, blocks = 2 * cb::kBlock;
  std::vector<CbDesc> cbs = {
      {cb::kScaler, b16, 1, "scaler"},
      {cb::kMask, b16, 1, "mask"},
      {cb::kGamma, b16, row, "gamma"},
      {cb::kXhat, b16, fit ? wt3 : blocks, "x_hat"},
      {cb::kRstd, b16, 1, "rstd"},
      {cb::kDy, b16, row, "dy"},
      {cb::kX, b16, row, "x"},
      {cb::kMean, b16, 1, "mean"},
      {cb::kMeanBcast, b16, 1, "mean_bcast"},
      {cb::kDx, b16, blocks, "dx"},
      {cb::kDgammaComp, b16, blocks, "dgamma_components"},
      {cb::kDbetaComp, b16, blocks, "dbeta_components"},
      {cb::kRstdBcast, b16, 1, "rstd_bcast"},
      {cb::kS1, f32, 1, "s1"},
      {cb::kS2, f32, 1, "s2"},
  };
  if (option2) cbs.push_back({cb::kAccumulate, f32, 1, "accumulate"});
  return cbs;
}

uint16_t scaler_bits(const ReportVariant& v, int64_t C) {
  const float inv_c = 1.0f / float(C);
  switch (v.inv_c) {
    case ReportInvC::kTruncatedBf16:
      return float_to_bf16_truncate(inv_c).bits;
    case ReportInvC::kRoundedBf16:
      return float_to_bf16(inv_c).bits;
    case ReportInvC::kFp32:
      break;
  }
  return float_to_bf16(1.0f).bits;
}

struct Buffers {
  Buffer x, dy, gamma, mean, rstd, dx, dgamma, dbeta;
};

// The op's kernels, in tt-metal's dialect next to this file (tt/), JIT-compiled: the compute
// kernel once per variant (its switches are defines), reader and writer once.
std::string report_kernel_path(const char* name) {
  return std::string(tt::config::kSourceDir) + "/tile/ops/report_layernorm_backward/tt/" + name;
}

struct ReportKernels {
  void (*reader)() = nullptr;
  void (*compute)() = nullptr;
  void (*writer)() = nullptr;
};

Status report_kernels(const ReportVariant& v, ReportKernels* out) {
  const uint32_t acc = kInterleavedDramAccessorArg;
  std::map<std::string, std::string> defines{{"REPORT_SUM_LOOP", std::to_string(v.sum_loop)}};
  if (v.bug1) defines["REPORT_BUG1"] = "";
  if (v.bug2) defines["REPORT_BUG2"] = "";
  tt::JitKernel r, c, w;
  TN_RETURN_IF_ERROR(tt::jit_compile({report_kernel_path("reader.cpp"),
                                      KernelKind::kReader,
                                      {cb::kBlock, acc, acc, acc, acc, acc}},
                                     &r));
  TN_RETURN_IF_ERROR(tt::jit_compile(
      {report_kernel_path("compute.cpp"), KernelKind::kCompute, {cb::kBlock}, defines}, &c));
  TN_RETURN_IF_ERROR(tt::jit_compile(
      {report_kernel_path("writer.cpp"), KernelKind::kWriter, {cb::kBlock, acc, acc, acc}}, &w));
  *out = {r.entry, c.entry, w.entry};
  return {};
}

// Runtime args per used core, in core order of the kernel handles: reader, compute, writer.
void set_args(Program& program, const std::vector<KernelHandle>& kernels, const WorkSplit& split,
              const Buffers& b, uint32_t wt, uint32_t mask_w, bool fit, uint32_t inv_c_bits,
              uint32_t scaler) {
  for (uint32_t i = 0; i < split.num_cores; ++i) {
    const CoreCoord core = split.cores[i];
    const uint32_t start = split.first_work_of(i), n = split.work_of(i);
    program.set_runtime_arg_words(kernels[3 * i], core,
                                  {b.x.address, b.dy.address, b.gamma.address, b.mean.address,
                                   b.rstd.address, start, n, wt, mask_w, fit ? 1u : 0u, scaler});
    program.set_runtime_arg_words(kernels[3 * i + 1], core,
                                  {n, wt, mask_w, fit ? 1u : 0u, inv_c_bits});
    program.set_runtime_arg_words(kernels[3 * i + 2], core,
                                  {b.dx.address, b.dgamma.address, b.dbeta.address, start, n, wt});
  }
}

Status run_on(Device& device, const ReportBackwardInputs& in, const ReportVariant& v,
              const Buffers& b, ReportBackwardResult* out) {
  const DeviceConfig& cfg = device.config();
  const uint32_t ht = uint32_t(tiles_along(in.rows)), wt = uint32_t(tiles_along(in.C));
  const bool fit = report_fits_l1(wt, cfg.l1_size - cfg.l1_allocator_base);
  out->fit = fit;
  const WorkSplit split = split_work_to_cores(cfg.grid_x, cfg.grid_y, ht);
  const uint16_t scaler = scaler_bits(v, in.C);
  const uint32_t mask_w = uint32_t(in.C % kTileDim);
  const uint32_t inv_c_bits =
      v.inv_c == ReportInvC::kFp32 ? std::bit_cast<uint32_t>(1.0f / float(in.C)) : 0u;
  ComputeConfig compute{
      .fp32_dest_acc_en = true, .dst_full_sync_en = false, .math_fidelity = MathFidelity::HiFi4};
  if (v.unpack_to_dest_fp32) {
    compute.unpack_to_dest_mode[cb::kS1] = UnpackToDestMode::UnpackToDestFp32;
    compute.unpack_to_dest_mode[cb::kS2] = UnpackToDestMode::UnpackToDestFp32;
  }

  // What the program depends on; the buffer addresses are runtime args.
  const uint64_t key = ProgramHash()
                           .add(std::string_view("report_layernorm_backward"))
                           .add(std::string_view(v.name))
                           .add(in.rows)
                           .add(in.C)
                           .add(cfg.grid_x)
                           .add(cfg.grid_y)
                           .add(cfg.l1_size)
                           .add(cfg.l1_allocator_base)
                           .value();
  // Kept in the cache only once a run succeeded (OpProgram).
  OpProgram cached(device, key);
  out->program_cache_hit = cached.hit();
  Program& program = cached.program();
  ReportKernels k;
  if (!cached.hit()) {
    TN_RETURN_IF_ERROR(report_kernels(v, &k));
    const CoreRange grid({0, 0}, {cfg.grid_x - 1, cfg.grid_y - 1});
    TN_RETURN_IF_ERROR(
        create_cbs(program, grid, report_cbs(wt, fit, v.sum_loop == kSumOption2 && !fit)));
  }
  std::vector<KernelHandle> kernels;
  for (uint32_t i = 0; i < split.num_cores; ++i) {
    const CoreCoord core = split.cores[i];
    kernels.push_back(
        cached.create_kernel(KernelKind::kReader, core, k.reader, "report_backward_reader"));
    kernels.push_back(cached.create_kernel(KernelKind::kCompute, core, k.compute,
                                           "report_backward_compute", compute));
    kernels.push_back(
        cached.create_kernel(KernelKind::kWriter, core, k.writer, "report_backward_writer"));
  }
  set_args(program, kernels, split, b, wt, mask_w, fit, inv_c_bits, scaler);
  TN_RETURN_IF_ERROR(cached.ready());
  Status s = device.run(program);
  out->run = device.last_run();
  if (s.ok()) cached.succeeded();
  return s;
}

}  // namespace

ReportKernelLines report_kernel_lines() {
  // The compute kernel marks its defects' lines with "// line: NAME".
  static const ReportKernelLines lines = [] {
    ReportKernelLines l{};
    std::ifstream in(report_kernel_path("compute.cpp"));
    std::string text;
    for (uint32_t n = 1; std::getline(in, text); ++n) {
      if (text.find("// line: bug1-mul") != std::string::npos) l.bug1_mul = n;
      if (text.find("// line: xhat-acquire") != std::string::npos) l.xhat_acquire = n;
      if (text.find("// line: option1-mul") != std::string::npos) l.option1_mul = n;
    }
    return l;
  }();
  return lines;
}

Status report_layernorm_backward(Device& device, const ReportBackwardInputs& in,
                                 const ReportVariant& v, ReportBackwardResult* out) {
  const int64_t rows = in.rows, C = in.C;
  const uint32_t pages = uint32_t(num_tiles(rows, C)), stat_pages = uint32_t(num_tiles(rows, 1));
  const DataFormat b16 = DataFormat::Float16_b;
  Buffers b;
  // Created in this order and freed in the reverse one (the DRAM allocator is a bump allocator).
  std::vector<Buffer*> order = {&b.x,    &b.dy, &b.gamma,  &b.mean,
                                &b.rstd, &b.dx, &b.dgamma, &b.dbeta};
  const uint32_t sizes[] = {pages, pages, uint32_t(num_tiles(1, C)), stat_pages, stat_pages, pages,
                            pages, pages};
  size_t created = 0;
  Status s;
  for (; created < order.size() && s.ok(); ++created)
    s = device.create_buffer(sizes[created], b16, order[created]);
  if (!s.ok()) --created;
  if (s.ok()) s = device.write_tiles(b.x, in.x, rows, C, 0.0f);
  if (s.ok()) s = device.write_tiles(b.dy, in.dy, rows, C, 0.0f);
  if (s.ok()) s = device.write_tiles(b.gamma, in.gamma, 1, C, 0.0f);
  if (s.ok()) s = device.write_tiles(b.mean, in.mean, rows, 1, 0.0f);
  if (s.ok()) s = device.write_tiles(b.rstd, in.rstd, rows, 1, 0.0f);
  if (s.ok()) s = run_on(device, in, v, b, out);
  if (s.ok()) {
    out->dx.resize(size_t(rows * C));
    s = device.read_tiles(b.dx, rows, C, out->dx.data());
  }
  if (s.ok()) {
    // The host's reduction of the full-size components over rows (upstream: ttnn::sum).
    std::vector<float> comp(size_t(rows * C));
    out->dgamma.assign(size_t(C), 0.0);
    out->dbeta.assign(size_t(C), 0.0);
    for (auto [buffer, sum] :
         {std::pair{&b.dgamma, &out->dgamma}, std::pair{&b.dbeta, &out->dbeta}}) {
      if (s.ok()) s = device.read_tiles(*buffer, rows, C, comp.data());
      for (int64_t r = 0; r < rows && s.ok(); ++r)
        for (int64_t c = 0; c < C; ++c) (*sum)[size_t(c)] += comp[size_t(r * C + c)];
    }
  }
  while (created > 0) {
    const Status f = device.free_buffer(*order[--created]);
    if (s.ok()) s = f;
  }
  return s;
}

}  // namespace tilenorm::tile
