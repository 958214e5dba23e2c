// The simulated device's stand-in for the CUDA header of this name (src/cuda/sim).
#pragma once
#include "cuda_sim.h"
