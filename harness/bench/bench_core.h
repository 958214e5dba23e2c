// Norm-family benchmark core shared by the Google Benchmark program (norm_bench) and
// `tilenorm bench`: the implementations under test (tilenorm's cpu backend, and oneDNN and
// libtorch when found at configure time), deterministic inputs, an accuracy check against the
// float64 reference, a STREAM-like copy, and the byte model of docs/performance.md ("Byte model").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tilenorm/norm.h"
#include "tilenorm/tensor.h"

namespace tilenorm::bench {

enum class Direction { kForward, kBackward };
const char* direction_name(Direction dir);  // "fwd", "bwd"

struct BenchShape {
  int64_t rows, C;
};
// rows x C of docs/performance.md: BERT-base/large, 4K and 8K hidden, an odd width, huge C.
const std::vector<BenchShape>& default_shapes();

// The member of the family measured (NormOp, include/tilenorm/norm.h): LayerNorm or RMSNorm,
// alone or with the fused residual add (forward reads a residual and writes h = x + residual;
// backward reads dh_in).
std::string op_name(const NormOp& op);  // "LayerNorm", "RMSNorm", "LayerNormResidual", ...

// Minimal traffic, identical for every implementation (so GB/s compare like time):
//   forward:  read x, gamma, beta; write y, mean, rstd  = 2*R*C*es + 2*C*es + 2*R*4
//   backward: read x, dy, gamma, mean, rstd; write dx, dgamma, dbeta = 3*R*C*es + 3*C*es + 2*R*4
// RMSNorm has no beta, mean or dbeta: 2*R*C*es + C*es + R*4 and 3*R*C*es + 2*C*es + R*4. The
// residual add reads the residual and writes h in forward (+ 2*R*C*es), reads dh_in in backward
// (+ R*C*es). es = element size of x (4 f32, 2 bf16).
double bytes_moved(const BenchShape& s, DType dtype, Direction dir, const NormOp& op = {});

// Inputs as float (rounded to bf16 when dtype is bf16): x = 0.5 + 2u (non-zero row means),
// dy = u, gamma = 1 + 0.25u, beta = 0.1u, u uniform in [-0.5, 0.5) from a hash; with the
// residual add, residual = u and dh_in = 0.5u (else empty).
struct BenchInputs {
  BenchShape shape;
  DType dtype;
  std::vector<float> x, dy, gamma, beta;
  NormOp op = {};
  std::vector<float> residual = {}, dh_in = {};
};
BenchInputs make_bench_inputs(const BenchShape& s, DType dtype, const NormOp& op = {});

// Outputs of one forward + backward (backward on the forward's own statistics and h), as
// double. RMSNorm: no mean, no dbeta, rstd is rrms; h only with the residual add.
struct BenchOutputs {
  std::vector<double> y, mean, rstd, dx, dgamma, dbeta, h = {};
};

// One implementation. prepare() allocates and fills its own buffers (in its native layout) for
// in.op and runs a forward so that backward has statistics; run() is the timed call.
class Impl {
 public:
  virtual ~Impl() = default;
  virtual std::string name() const = 0;
  // false: this implementation cannot run the case (reason in *why).
  virtual bool prepare(const BenchInputs& in, int threads, std::string* why) = 0;
  virtual void run(Direction dir) = 0;
  // Runs forward then backward once more and returns the outputs.
  virtual BenchOutputs outputs() = 0;
  // Frees the buffers of the last prepare().
  virtual void release() = 0;
};

// "tilenorm" always; "onednn", "torch" when the peers plugin (libtilenorm_bench_peers.so, built
// when CMake finds the libraries) loads. The plugin keeps the peers' large shared libraries out
// of every other `tilenorm` command's start-up.
std::vector<std::string> impl_names();
std::unique_ptr<Impl> make_impl(const std::string& name);
// Version strings of the peers loaded ("oneDNN 2.6.3", ...), for the report header.
std::vector<std::string> peer_versions();
// Why the plugin did not load ("" when it did or none was built).
std::string peers_status();

// The plugin's entry point, `tilenorm_bench_register_peers`, calls this once per peer.
using ImplFactory = Impl* (*)();
using RegisterPeer = void (*)(const char* name, ImplFactory make, const char* version);

// max |got - ref| / max |ref| over every output against the float64 reference on the same
// inputs; "ok" when within 1e-4 (f32) / 2e-2 (bf16), else "FAIL (dgamma=1.2e-01 ...)": the
// check column of docs/performance.md's tables.
std::string check_outputs(const BenchInputs& in, const BenchOutputs& got, double* max_err);

// Writes a buffer larger than the L3 so the next call starts with cold caches.
void flush_caches();

// STREAM-like copy c = a over doubles, 256 MiB per array, static partition over `threads`;
// GB/s counting bytes read + written (16 per element), best of `reps`.
double copy_gbps(int threads, int reps = 10);
void copy_once(int threads);  // one timed unit of the copy above
double copy_bytes();          // bytes copy_once counts

struct Timing {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  int reps = 0;
};
// warmup untimed calls, then `reps` timed ones (caches flushed before each when cold).
Timing time_calls(const std::function<void()>& fn, int warmup, int reps, bool cold);

std::string machine_description();  // "AMD EPYC ..., 2 threads, L3 32 MiB, avx512_bf16"

}  // namespace tilenorm::bench
