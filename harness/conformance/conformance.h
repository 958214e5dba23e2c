// The conformance registry: one list of op cases, one tolerance table, one seeded input generator
// and run_case(), driving every backend against the float64 reference. The GoogleTest suite
// (tests/conformance_test.cc) and `tilenorm verify` both loop over it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/compare.h"
#include "harness/conformance/tolerance.h"
#include "norm_args.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm::conformance {

// The registry drives every NormOp of the family (kNormOps, include/tilenorm/norm.h), forward
// and backward of each.
std::string op_name(const NormOp& op);  // "layernorm", "rmsnorm", "layernorm+res", "rmsnorm+res"

// How a case's inputs are drawn (make_input).
enum class Input {
  kRandom,    // x, dy uniform in [-1, 1); gamma, beta uniform in [0, 1)
  kOffset,    // as kRandom, x uniform in [x_offset - 1, x_offset + 1)
  kConstant,  // every element of x, dy, gamma the case's value; beta 0 (the bug report's
              // inputs); residual = x, dh_in = dy
};

// The path the tile backend must take on the case's machine, per direction and dtype ("fit",
// "block" or "streamed"; the tile plan's rule, restated here so that a change of the rule shows).
struct TilePaths {
  const char* forward_bf16;
  const char* forward_f32;
  const char* backward_bf16;
  const char* backward_f32;
  const char* get(bool backward, DType dtype) const;
};
inline constexpr TilePaths kAllFit = {"fit", "fit", "fit", "fit"};

struct Case {
  NormOp op;
  std::string reason;  // why this case is in the list
  Shape shape;
  Input input = Input::kRandom;
  double eps = 1e-5;
  double x = 0.5, dy = 1, gamma = 1;  // kConstant: the values
  double x_offset = 0;                // kOffset: the centre of x
  uint64_t seed = 0;                  // distinct per case
  TilePaths tile_paths = kAllFit;
  // Where another op of the family takes other paths on this machine (RMSNorm has fewer CBs,
  // the residual ops more), its paths; every other op takes tile_paths.
  std::vector<std::pair<NormOp, TilePaths>> op_tile_paths;
  const TilePaths& paths_of(const NormOp& op) const {
    for (const auto& [o, p] : op_tile_paths)
      if (o == op) return p;
    return tile_paths;
  }
  // The tile machine of the case: L1 per core in KiB and the grid's side (0: Wormhole's
  // 1464 KiB and 8x8). The tile backend always runs with the sanitizer on.
  uint32_t tile_l1_kib = 0, tile_grid = 0;
  bool residual_too = false;  // the residual ops run this case too (a subset keeps them quick)
};

// Every case of every op, in a fixed order. With the environment variable TILENORM_CI_LIGHT set
// to a non-empty value other than "0" (the sanitizer builds of CI), the registry leaves out each
// case of more than kLightMaxElements elements whose tile paths, machine and op another, smaller
// case also has: no backend, dtype, op, direction or path is dropped, only the largest shapes.
inline constexpr int64_t kLightMaxElements = int64_t{1} << 20;
bool ci_light();
const std::vector<Case>& registry();
const std::vector<Case>& full_registry();                       // every case, whatever the switch
std::vector<Case> light_cases(const std::vector<Case>& cases);  // the switch's rule
bool same_tile_machine(const Case& a, const Case& b);  // op, L1, grid and tile paths all equal
std::string input_label(const Case& c);                // "random eps=1e-05", "x=0.5 dy=1 gamma=1"

// The tensors of an op, for the generator and the tolerance table.
enum class Role { kX, kDy, kGamma, kBeta, kResidual, kDhIn };
// One seeded generator (a fixed LCG, independent of <random>'s implementation): the case's input
// `role` of `shape` rounded to `dtype`.
Tensor make_input(const Case& c, Role role, const Shape& shape, DType dtype);

// One comparison of a run: an output against the reference, a run that failed, or (tile) the
// path taken against the case's.
struct Check {
  std::string direction;  // "forward", "backward" (reference statistics), "backward-own"
                          // (the forward's own statistics)
  std::string output;     // "y", "h", "mean", ..., "dbeta"; "status" for a failed run; "path"
  std::string path;       // the path the backend reported
  double err = 0;         // max |got - ref|
  double excess = 0;      // worst |got - ref| / allowed; <= 1 passes
  Tolerance tol;          // effective atol, rtol
  bool pass = true;
  std::string detail;  // why it failed: the worst element, the status, the path
};

struct CaseResult {
  // The backend cannot run here (not built, or a CUDA build without a usable device):
  // why, and no checks.
  std::string unsupported;
  std::vector<Check> checks;
  bool pass() const;
};

// Ops from outside the library that run_case drives in place of the backend's, with that
// backend's tolerance bands (`tilenorm verify --tt-kernels DIR`: tt-train's kernels). Each fills
// the outputs, *path and *findings (the sanitizer's reports, one line each; any fails the
// direction). Unsupported from the forward skips the case with its message.
struct ExternalOps {
  std::function<Status(const Case&, const NormForwardArgs&, const NormForwardOutputs&,
                       std::string* path, std::vector<std::string>* findings)>
      forward;
  std::function<Status(const Case&, const NormBackwardArgs&, const NormBackwardOutputs&,
                       std::string* path, std::vector<std::string>* findings)>
      backward;
};

struct RunOptions {
  int threads = 0;           // cpu backend threads, 0 = all
  uint32_t tile_l1_kib = 0;  // non-zero: every tile case on this L1 instead of the case's
  const ExternalOps* external = nullptr;  // non-null: these ops instead of the backend's
};

// Forward against the reference; backward on the reference statistics (rounded to the stat
// dtype, as a forward saves them) and on the forward's own statistics (and own h).
CaseResult run_case(Backend backend, DType dtype, const Case& c, const RunOptions& options = {});

}  // namespace tilenorm::conformance
