// Test kernel in tt-metal's dialect that calls a function the tile machine does not provide.
#include "api/dataflow/dataflow_api.h"

void noc_semaphore_wait(volatile uint32_t* sem, uint32_t value);

void kernel_main() {
    uint32_t sem = 0;
    noc_semaphore_wait(&sem, 1);
}
