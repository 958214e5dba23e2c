// Each sanitizer rule: a small kernel that breaks it and the report it must produce.
#include <gtest/gtest.h>

#include "tile/machine/machine_test_util.h"

namespace tilenorm::tile {
namespace {

using namespace test_util;  // NOLINT: the shared test kernels

}  // namespace
}  // namespace tilenorm::tile
