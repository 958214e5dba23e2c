// The norm family's members as tile ops on a given device (or a fresh one), each output checked
// against the float64 reference within the conformance registry's tolerance for the tile backend.
// Shared by the program-cache and recovery suites.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends.h"
#include "harness/conformance/conformance.h"
#include "reference/norm.h"
#include "test_util.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::tile::family {

// A member: LayerNorm or RMSNorm, with or without the fused residual (forward: + residual;
// backward: + dh_in), forward or backward.
struct Member {
  Norm norm = Norm::kLayerNorm;
  bool residual = false;
  bool backward = false;
};

inline std::string member_name(const Member& m) {
  return fmt::format("{}{} {}", m.norm == Norm::kRmsNorm ? "rmsnorm" : "layernorm",
                     m.residual ? (m.backward ? "+dh_in" : "+residual") : "",
                     m.backward ? "backward" : "forward");
}

// The eight members: forward then backward, each LayerNorm, LayerNorm+residual, RMSNorm,
// RMSNorm+residual.
inline std::vector<Member> all_members() {
  std::vector<Member> out;
  for (bool backward : {false, true})
    for (Norm norm : {Norm::kLayerNorm, Norm::kRmsNorm})
      for (bool residual : {false, true}) out.push_back({norm, residual, backward});
  return out;
}

inline NormOp registry_op(const Member& m) { return {.norm = m.norm, .residual = m.residual}; }

// One output against its reference, by the registry's rule: atol scaled by max(1, max |ref|)
// for y, dx and the parameter gradients, unscaled for h and the per-row statistics.
inline ::testing::AssertionResult close_to_reference(const Member& m, DType dtype,
                                                     conformance::Output output, const char* name,
                                                     const Tensor& got, const Tensor& ref) {
  using conformance::Output;
  const std::vector<double> want = reference::load_f64(ref.cview());
  Tolerance tol = conformance::tolerance(registry_op(m), Backend::kTile, dtype, output).tol;
  if (output != Output::kStats && output != Output::kH) {
    double scale = 1;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    tol.atol *= scale;
  }
  return testing::AllClose(name, got.cview(), want, tol);
}

// What a member's run gave: its status, whether the program came from the device's cache, and
// its outputs (forward: y, h, mean, rstd; backward: dx, dgamma, dbeta; empty where the member
// has none).
struct Run {
  Status status;
  bool cache_hit = false;
  std::vector<Tensor> outputs;
};

inline bool same_bits(const Run& a, const Run& b) {
  if (a.outputs.size() != b.outputs.size()) return false;
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    const bool empty_a = a.outputs[i].raw() == nullptr, empty_b = b.outputs[i].raw() == nullptr;
    if (empty_a != empty_b || (!empty_a && !testing::bitwise_equal(a.outputs[i], b.outputs[i])))
      return false;
  }
  return true;
}

// Runs `m` on rows x C inputs drawn from `seed` in `dtype` on `device` (nullptr: a fresh device
// of `config`), with `eps`, and checks every output against the reference (the backward takes
// the reference forward's statistics, rounded to f32 as a forward saves them).
inline Run run_member(const Member& m, const Shape& shape, DType dtype, uint64_t seed,
                      Device* device, const DeviceConfig& config = {}, double eps = 1e-5) {
  SCOPED_TRACE(
      fmt::format("{} {} {} eps {}", member_name(m), shape.to_string(), dtype_name(dtype), eps));
  using conformance::Output;
  const bool rms = m.norm == Norm::kRmsNorm;
  const Shape cs{shape.cols()}, rs = shape.leading();
  const Tensor x = testing::random_tensor(shape, dtype, seed, -1, 1.5);
  const Tensor gamma = testing::random_tensor(cs, dtype, seed + 1, 0, 1);
  const Tensor beta = rms ? Tensor() : testing::random_tensor(cs, dtype, seed + 2, -1, 1);
  const Tensor extra = m.residual ? testing::random_tensor(shape, dtype, seed + 3, -0.5, 1)
                                  : Tensor();  // residual (forward) or dh_in (backward)
  // A default Tensor (no storage) stands for an absent input or output.
  auto cview = [](const Tensor& t) { return t.raw() == nullptr ? ConstTensorView{} : t.cview(); };
  auto view = [](Tensor& t) { return t.raw() == nullptr ? TensorView{} : t.view(); };
  auto like = [](const Shape& s, DType d, bool present) {
    Tensor t = present ? Tensor(s, d) : Tensor();
    if (present) t.fill(NAN);
    return t;
  };
  TileOpConfig op_config;
  op_config.device = config;
  op_config.on_device = device;
  Run run;
  TileOpInfo info;
  if (!m.backward) {
    const NormForwardArgs args{.norm = m.norm,
                               .x = x.cview(),
                               .residual = cview(extra),
                               .gamma = gamma.cview(),
                               .beta = cview(beta),
                               .eps = eps};
    Tensor y = like(shape, dtype, true), h = like(shape, dtype, m.residual),
           mean = like(rs, DType::kF32, !rms), rstd = like(rs, DType::kF32, true);
    run.status = norm_forward_tile(
        args, {.y = y.view(), .mean = view(mean), .rstd = rstd.view(), .h = view(h)}, op_config,
        &info);
    run.cache_hit = info.program_cache_hit;
    if (run.status.ok()) {
      // y and the statistics are those of h as stored (the packer rounds h's ties away from
      // zero where the reference rounds them to even): the reference normalizes the tile's h.
      Tensor ref_y(shape, DType::kF64), ref_h = like(shape, dtype, m.residual),
                                        ref_mean = like(rs, DType::kF64, !rms),
                                        ref_rstd(rs, DType::kF64);
      EXPECT_TRUE(reference::norm_forward(args,
                                          {.y = ref_y.view(),
                                           .mean = view(ref_mean),
                                           .rstd = ref_rstd.view(),
                                           .h = view(ref_h)},
                                          {})
                      .ok());
      if (m.residual) {
        EXPECT_TRUE(close_to_reference(m, dtype, Output::kH, "h", h, ref_h));
        NormForwardArgs on_h = args;
        on_h.x = h.cview();
        on_h.residual = {};
        EXPECT_TRUE(
            reference::norm_forward(
                on_h, {.y = ref_y.view(), .mean = view(ref_mean), .rstd = ref_rstd.view()}, {})
                .ok());
      }
      EXPECT_TRUE(close_to_reference(m, dtype, Output::kY, "y", y, ref_y));
      if (!rms) {
        EXPECT_TRUE(close_to_reference(m, dtype, Output::kStats, "mean", mean, ref_mean));
      }
      EXPECT_TRUE(
          close_to_reference(m, dtype, Output::kStats, rms ? "rrms" : "rstd", rstd, ref_rstd));
    }
    for (Tensor* t : {&y, &h, &mean, &rstd}) run.outputs.push_back(std::move(*t));
    return run;
  }
  // The reference forward's statistics, rounded to f32 as a forward saves them.
  const Tensor dy = testing::random_tensor(shape, dtype, seed + 4, -1, 1);
  Tensor mean = like(rs, DType::kF32, !rms), rstd(rs, DType::kF32);
  {
    Tensor y(shape, DType::kF64);
    EXPECT_TRUE(reference::norm_forward({.norm = m.norm,
                                         .x = x.cview(),
                                         .gamma = gamma.cview(),
                                         .beta = cview(beta),
                                         .eps = eps},
                                        {.y = y.view(), .mean = view(mean), .rstd = rstd.view()},
                                        {})
                    .ok());
  }
  const NormBackwardArgs args{.norm = m.norm,
                              .x = x.cview(),
                              .dy = dy.cview(),
                              .gamma = gamma.cview(),
                              .mean = cview(mean),
                              .rstd = rstd.cview(),
                              .dh_in = cview(extra)};
  Tensor dx = like(shape, dtype, true), dgamma = like(cs, DType::kF32, true),
         dbeta = like(cs, DType::kF32, !rms);
  run.status = norm_backward_tile(
      args, {.dx = dx.view(), .dgamma = dgamma.view(), .dbeta = view(dbeta)}, op_config, &info);
  run.cache_hit = info.program_cache_hit;
  if (run.status.ok()) {
    Tensor ref_dx(shape, DType::kF64), ref_dgamma(cs, DType::kF64),
        ref_dbeta = like(cs, DType::kF64, !rms);
    EXPECT_TRUE(
        reference::norm_backward(
            args, {.dx = ref_dx.view(), .dgamma = ref_dgamma.view(), .dbeta = view(ref_dbeta)}, {})
            .ok());
    EXPECT_TRUE(close_to_reference(m, dtype, Output::kDx, "dx", dx, ref_dx));
    EXPECT_TRUE(close_to_reference(m, dtype, Output::kDParams, "dgamma", dgamma, ref_dgamma));
    if (!rms) {
      EXPECT_TRUE(close_to_reference(m, dtype, Output::kDParams, "dbeta", dbeta, ref_dbeta));
    }
  }
  for (Tensor* t : {&dx, &dgamma, &dbeta}) run.outputs.push_back(std::move(*t));
  return run;
}

}  // namespace tilenorm::tile::family
