// Test kernel in tt-metal's dialect (kernel_main in compute, the newest generation): acquires dst
// twice on line 8, which the sanitizer reports as a nested acquire.
#include "api/compute/reg_api.h"
#include "api/compute/tile_move_copy.h"

void kernel_main() {
    tile_regs_acquire();
    tile_regs_acquire();
    tile_regs_commit();
    tile_regs_wait();
    tile_regs_release();
}
