// The suite the CUDA mutation check runs: LayerNorm f32 forward and backward through the public
// API on the simulated device, against the float64 reference with the conformance registry's
// tolerances, on a shape of each path (a row tail with C % 8 != 0, row groups, a cluster of 2,
// split with several rows a batch). It passes on the kernels as written (ctest cuda_sim_suite)
// and must fail on each planted fault (ctest cuda_sim_mutation; tests/cuda_sim/CMakeLists.txt).
#include <gtest/gtest.h>

#include "harness/conformance/conformance.h"

namespace tilenorm {
namespace {

namespace cf = conformance;

void check(const Shape& shape, uint64_t seed) {
  cf::Case c;
  c.op = NormOp{.norm = Norm::kLayerNorm};
  c.reason = "cuda mutation suite";
  c.shape = shape;
  c.seed = seed;
  const cf::CaseResult r = cf::run_case(Backend::kCuda, DType::kF32, c);
  ASSERT_TRUE(r.unsupported.empty()) << r.unsupported;
  ASSERT_FALSE(r.checks.empty());
  for (const cf::Check& k : r.checks)
    EXPECT_TRUE(k.pass) << shape.to_string() << " " << k.direction << " " << k.output << ": "
                        << k.detail;
}

TEST(CudaSimSuite, RowTail) { check(Shape{64, 31}, 101); }
TEST(CudaSimSuite, RowGroups) { check(Shape{9, 1000}, 102); }
TEST(CudaSimSuite, ClusterOfTwo) { check(Shape{5, 8462}, 103); }
TEST(CudaSimSuite, SplitBatch) { check(Shape{5, 70000}, 104); }

}  // namespace
}  // namespace tilenorm
