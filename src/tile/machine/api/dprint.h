// Debug prints of kernels (tt-metal's DPRINT): text a kernel writes is kept, line by line and
// prefixed by its core and kernel kind, in the run's RunResult::dprint when
// DeviceConfig::dprint is set, and discarded otherwise. Every kernel kind may call these.
#pragma once

#include <string_view>

namespace tilenorm::tile {

// Whether this run keeps debug prints (a kernel may skip formatting when not).
bool dprint_enabled();
// Appends text to the calling kernel's print; each newline ends a line of the run's log.
void dprint_write(std::string_view text);

}  // namespace tilenorm::tile
