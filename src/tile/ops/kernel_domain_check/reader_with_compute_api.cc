// Must not compile: a reader that includes a compute API header could drive the dst registers.
// kernel_domain_check.cmake expects the wall's #error.
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/dataflow_api.h"

namespace tilenorm::tile {

void reader_reaching_dst() {
  cb_reserve_back(0, 1);
  tile_regs_acquire();
  cb_push_back(0, 1);
}

}  // namespace tilenorm::tile
