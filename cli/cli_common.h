// Shared CLI plumbing: exit codes, error printing, dtype/backend parsing, JSON summaries.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "tilenorm/layernorm.h"

namespace tilenorm::cli {

// Exit codes: 0 success; 1 a verification failed or a backend failed at run time;
// 2 bad input (arguments, files, shapes, a backend not built).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitBadInput = 2;

// The largest --threads accepted; more is bad input rather than thousands of thread stacks.
inline constexpr int kMaxThreads = 1024;

// Prints "tilenorm: error: <message>" on one line to stderr and returns the exit code for `s`.
int report_error(const Status& s);
int report_error(const std::string& message);

Status parse_backend_arg(const std::string& name, Backend* backend);
// f32 | bf16, and f64 where `allow_f64` (forward and backward on the reference backend).
Status parse_dtype_arg(const std::string& name, DType* dtype, bool allow_f64 = false);
// Parses --eps text (strtod): a finite number > 0, else bad input naming --eps; the API then
// checks the compute dtype's bounds (FLT_MIN..FLT_MAX, DBL_MIN for f64).
Status parse_eps_arg(const std::string& text, double* eps);

// Creates `dir` (and parents) if missing.
Status ensure_dir(const std::string& dir);

// {"shape": [...], "dtype": "f32", "min": .., "max": .., "mean": .., "nan": n}
nlohmann::json tensor_summary(const ConstTensorView& t);
std::string tensor_summary_line(const ConstTensorView& t);  // "[100, 8192] f32 min 0 max 0 mean 0"
nlohmann::json report_json(const RunReport& r);

void add_forward_command(CLI::App& app);
void add_backward_command(CLI::App& app);
void add_verify_command(CLI::App& app);
void add_repro_command(CLI::App& app);

}  // namespace tilenorm::cli
