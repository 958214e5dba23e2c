// Test kernel in tt-metal's dialect with a type error on line 5.
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t x = get_arg_val<uint32_t>(0) + not_declared_anywhere;
    (void)x;
}
