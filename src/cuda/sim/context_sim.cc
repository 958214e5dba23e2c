// context.cu compiled as host C++ for the simulated device.
#include "cuda/context.cu"
