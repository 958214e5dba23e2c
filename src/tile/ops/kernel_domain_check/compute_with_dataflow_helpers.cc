// Must not compile: a compute kernel that includes the readers' helpers (and so dataflow_api.h)
// could call the NoC or write L1 through a pointer. kernel_domain_check.cmake expects the
// wall's #error.
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/ops/compute_helpers.h"
#include "tile/ops/dataflow_helpers.h"

namespace tilenorm::tile {

void compute_kernel_reaching_the_noc() {
  tile_regs_acquire();
  push_fill_page(0, 1.0f);
  pack_out({1});
}

}  // namespace tilenorm::tile
