// Cross-backend conformance: every op of the registry (harness/conformance) x backend x dtype x
// case against the float64 reference, the same cases and tolerances as `tilenorm verify`. A backend
// that is not built, or cannot run an op here, is skipped with the reason.
#include "harness/conformance/conformance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace tilenorm {
namespace {

namespace cf = conformance;

struct Param {
  Backend backend;
  DType dtype;
  size_t index;  // into cf::registry()
};

void PrintTo(const Param& p, std::ostream* os) {
  const conformance::Case& c = conformance::registry()[p.index];
  *os << conformance::op_name(c.op) << " " << backend_name(p.backend) << " " << dtype_name(p.dtype)
      << " " << c.shape.to_string();
}

std::vector<Param> params() {
  std::vector<Param> all;
  for (Backend b : {Backend::kCpu, Backend::kTile, Backend::kCuda})
    for (DType d : {DType::kF32, DType::kBF16})
      for (size_t i = 0; i < cf::registry().size(); ++i) all.push_back({b, d, i});
  // f64 data: the cpu backend's f64 kernels (the reference is the judge, not a candidate).
  for (size_t i = 0; i < cf::registry().size(); ++i) all.push_back({Backend::kCpu, DType::kF64, i});
  return all;
}

// "layernorm_cpu_f32_07_100x8192", "rmsnorm_res_tile_bf16_...": op, backend, dtype, the case's
// index, its shape.
std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  const cf::Case& c = cf::registry()[p.index];
  std::string shape;
  for (int64_t d : c.shape.dims()) {
    if (!shape.empty()) shape += 'x';
    shape += std::to_string(d);
  }
  char index[8];
  std::snprintf(index, sizeof index, "%02zu", p.index);
  std::string op = cf::op_name(c.op);
  std::replace(op.begin(), op.end(), '+', '_');
  return op + "_" + backend_name(p.backend) + "_" + dtype_name(p.dtype) + "_" + index + "_" + shape;
}

class Conformance : public ::testing::TestWithParam<Param> {};

TEST_P(Conformance, MatchesReference) {
  const Param& p = GetParam();
  const cf::Case& c = cf::registry()[p.index];
  SCOPED_TRACE(c.reason + ", " + cf::input_label(c));
  const cf::CaseResult r = cf::run_case(p.backend, p.dtype, c, {2, 0});
  if (!r.unsupported.empty()) GTEST_SKIP() << r.unsupported;
  ASSERT_FALSE(r.checks.empty());
  for (const cf::Check& k : r.checks) {
    EXPECT_TRUE(k.pass) << k.direction << " " << k.output << " (path " << k.path << ", atol "
                        << k.tol.atol << ", rtol " << k.tol.rtol << "): " << k.detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, Conformance, ::testing::ValuesIn(params()), param_name);

// Every tolerance the registry uses has its reason, and the table is ordered so that a backend's
// own rows win over the shared ones.
TEST(ConformanceRegistry, TolerancesHaveReasons) {
  for (const NormOp& op : kNormOps)
    for (Backend b : all_backends())
      for (DType d : {DType::kF32, DType::kBF16})
        for (cf::Output o :
             {cf::Output::kY, cf::Output::kStats, cf::Output::kDx, cf::Output::kDParams}) {
          const cf::ToleranceRow row = cf::tolerance(op, b, d, o);
          EXPECT_GT(row.tol.atol, 0) << backend_name(b) << " " << dtype_name(d);
          EXPECT_GT(std::string(row.reason).size(), 20u);
        }
  // h is one rounding of an exact sum: an ulp of the dtype at most.
  EXPECT_EQ(cf::tolerance(NormOp{.norm = Norm::kRmsNorm, .residual = true}, Backend::kCpu,
                          DType::kBF16, cf::Output::kH)
                .tol.rtol,
            0x1.0p-7);
  EXPECT_EQ(cf::tolerance(NormOp{}, Backend::kTile, DType::kBF16, cf::Output::kDParams).tol.atol,
            5e-2);
  EXPECT_EQ(cf::tolerance(NormOp{}, Backend::kCpu, DType::kF32, cf::Output::kY).tol.atol, 1e-5);
}

// The generator is a fixed function of the case: the same case gives the same bits, distinct
// cases and roles differ, and constant cases hold exactly the report's values.
TEST(ConformanceRegistry, GeneratorIsSeededPerCaseAndRole) {
  const auto& cases = cf::registry();
  ASSERT_GE(cases.size(), 2u);
  const Shape s{4, 37};
  const Tensor a = cf::make_input(cases[0], cf::Role::kX, s, DType::kF32);
  const Tensor b = cf::make_input(cases[0], cf::Role::kX, s, DType::kF32);
  const Tensor c = cf::make_input(cases[1], cf::Role::kX, s, DType::kF32);
  const Tensor d = cf::make_input(cases[0], cf::Role::kDy, s, DType::kF32);
  int same_b = 0, same_c = 0, same_d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    same_b += a.get(i) == b.get(i);
    same_c += a.get(i) == c.get(i);
    same_d += a.get(i) == d.get(i);
    EXPECT_GE(a.get(i), -1.0);
    EXPECT_LT(a.get(i), 1.0);
  }
  EXPECT_EQ(same_b, a.numel());
  EXPECT_LT(same_c, 2);
  EXPECT_LT(same_d, 2);
  for (const cf::Case& k : cases) {
    if (k.input != cf::Input::kConstant) continue;
    const Tensor x = cf::make_input(k, cf::Role::kX, s, DType::kBF16);
    const Tensor beta = cf::make_input(k, cf::Role::kBeta, Shape{37}, DType::kBF16);
    EXPECT_EQ(x.get(5), k.x);
    EXPECT_EQ(beta.get(3), 0.0);
  }
}

// The CI's light registry (TILENORM_CI_LIGHT) drops only cases over the size limit, and only
// where a smaller case keeps the same op, tile machine and paths: every combination stays.
TEST(ConformanceRegistry, LightRegistryDropsOnlyTheLargestShapes) {
  const auto& full = cf::full_registry();
  const std::vector<cf::Case> light = cf::light_cases(full);
  EXPECT_LT(light.size(), full.size());
  int64_t full_elements = 0, light_elements = 0;
  for (const cf::Case& c : full) full_elements += c.shape.numel();
  for (const cf::Case& c : light) light_elements += c.shape.numel();
  EXPECT_LT(light_elements * 2, full_elements);  // at least halves the work
  for (const cf::Case& c : full) {
    const bool kept = std::any_of(light.begin(), light.end(), [&](const cf::Case& k) {
      return k.op == c.op && k.reason == c.reason;
    });
    const bool covered = std::any_of(
        light.begin(), light.end(), [&](const cf::Case& k) { return cf::same_tile_machine(c, k); });
    EXPECT_TRUE(covered) << c.reason;
    if (!kept) EXPECT_GT(c.shape.numel(), cf::kLightMaxElements) << c.reason;
  }
  // The single case of the 360 KiB machine is large and stays.
  EXPECT_TRUE(std::any_of(light.begin(), light.end(), [](const cf::Case& k) {
    return k.shape == Shape{40, 40010};
  }));
  EXPECT_EQ(cf::registry().size(), cf::ci_light() ? light.size() : full.size());
}

// A backend must fail a case it gets wrong: the path check fires on a machine whose L1 moves the
// tile plan off the case's path, and the failing check names the path.
TEST(ConformanceRegistry, RunCaseReportsAPathThatMoved) {
  if (!backend_built(Backend::kTile)) GTEST_SKIP() << "tile is not built";
  const auto& cases = cf::registry();
  const cf::Case* big = nullptr;
  for (const cf::Case& c : cases)
    if (c.op == NormOp{} && c.shape == Shape{300, 4600}) big = &c;
  ASSERT_NE(big, nullptr);
  const cf::CaseResult r = cf::run_case(Backend::kTile, DType::kBF16, *big, {2, 1464});
  ASSERT_TRUE(r.unsupported.empty()) << r.unsupported;
  EXPECT_FALSE(r.pass());
  bool named = false;
  for (const cf::Check& k : r.checks)
    named |= k.output == "path" && !k.pass && k.detail.find("expected block") != std::string::npos;
  EXPECT_TRUE(named);
}

// Every op of the registry end to end on the reference backend (float64 against float64: the
// plumbing of each op's inputs, outputs and checks), on two small cases: the outputs each op
// has, and nothing else.
TEST(ConformanceRegistry, EveryOpRunsOnTheReference) {
  for (const NormOp& op : kNormOps) {
    for (const cf::Case& c : cf::registry()) {
      if (c.op != op || !(c.shape == Shape{1, 1} || c.shape == Shape{2, 3, 100})) continue;
      for (DType d : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(std::string(cf::op_name(op)) + " " + c.shape.to_string() + " " +
                     dtype_name(d));
        const cf::CaseResult r = cf::run_case(Backend::kReference, d, c);
        ASSERT_TRUE(r.unsupported.empty()) << r.unsupported;
        std::string outputs;
        for (const cf::Check& k : r.checks) {
          EXPECT_TRUE(k.pass) << k.direction << " " << k.output << ": " << k.detail;
          if (k.direction == "forward" || k.direction == "backward") outputs += k.output + " ";
        }
        const bool rms = op.norm == Norm::kRmsNorm, res = op.residual;
        std::string want = std::string("y ") + (res ? "h " : "") + (rms ? "rrms " : "mean rstd ") +
                           "dx dgamma " + (rms ? "" : "dbeta ");
        EXPECT_EQ(outputs, want);
      }
    }
  }
}

}  // namespace
}  // namespace tilenorm
