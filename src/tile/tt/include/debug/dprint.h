// tt-metal path debug/dprint.h: DPRINT, discarded.
#pragma once
#include "tilenorm_tt/dprint.h"
