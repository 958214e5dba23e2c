// tt-metal path api/debug/dprint.h: DPRINT, discarded.
#pragma once
#include "tilenorm_tt/dprint.h"
