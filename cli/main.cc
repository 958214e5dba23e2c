// tilenorm: LayerNorm / RMSNorm forward/backward on .npy tensors, verification and benchmarks.
#include <cstdio>
#include <exception>
#include <new>

#include "bench.h"
#include "cli_common.h"
#include "common/npy.h"

namespace {

int run(int argc, char** argv) {
  using namespace tilenorm::cli;
  CLI::App app{
      "tilenorm: LayerNorm / RMSNorm forward/backward on .npy tensors (backends: reference, cpu, "
      "tile, cuda).\nExit codes: 0 ok, 1 verification or run-time failure, 2 bad input."};
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("tilenorm: error: ") + e.what() + "\n";
  });
  tilenorm::npy_install_signal_handlers();
  add_forward_command(app);
  add_backward_command(app);
  add_verify_command(app);
  add_repro_command(app);
  add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // the command already printed its one-line error
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tilenorm: error: out of memory\n");
    return kExitFailed;
  } catch (const std::exception& e) {  // e.g. std::system_error when a thread cannot start
    std::fprintf(stderr, "tilenorm: error: run-time failure: %s\n", e.what());
    return kExitFailed;
  } catch (...) {
    std::fprintf(stderr, "tilenorm: error: unexpected exception\n");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (...) {  // building the commands failed (out of memory); run() catches the rest
    std::fprintf(stderr, "tilenorm: error: unexpected exception\n");
    return tilenorm::cli::kExitFailed;
  }
}
