// norm_forward.cu compiled as host C++ for the simulated device (instrumented: see exec.cc).
#include "cuda/norm_forward.cu"
