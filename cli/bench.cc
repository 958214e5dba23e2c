// Placeholder until the CPU benchmark lands.
#include "bench.h"

#include "cli_common.h"

namespace tilenorm::cli {

void add_bench_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("bench", "Benchmark (not implemented yet)");
  cmd->callback([] { throw CLI::RuntimeError(report_error("bench is not implemented yet")); });
}

}  // namespace tilenorm::cli
