// tt-metal path api/debug/dprint.h: DPRINT into the run's debug print log.
#pragma once
#include "tilenorm_tt/dprint.h"
