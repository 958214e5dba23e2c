// tt-metal path debug/dprint_pages.h: DPRINT, discarded.
#pragma once
#include "tilenorm_tt/dprint.h"
