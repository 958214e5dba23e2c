// tt-metal path api/dataflow/dataflow_api.h: the tile machine's dataflow API.
#pragma once
#include "tilenorm_tt/dataflow.h"
