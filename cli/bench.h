// `tilenorm bench`: GB/s of each implementation beside the measured copy bandwidth.
#pragma once

#include <CLI/CLI.hpp>

namespace tilenorm::cli {

void add_bench_command(CLI::App& app);

}  // namespace tilenorm::cli
