// libFuzzer target for the .npy reader: any input is parsed as f32 and f64; whatever parses must
// encode and parse back to the same shape and bits. Run with scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tilenorm;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (DType dtype : {DType::kF32, DType::kF64}) {
    Tensor t;
    if (!npy_parse("fuzz.npy", bytes, dtype, &t).ok()) continue;
    Tensor back;
    if (!npy_parse("again.npy", npy_encode(t.cview()), dtype, &back).ok() ||
        back.shape() != t.shape() || std::memcmp(back.raw(), t.raw(), t.nbytes()) != 0)
      std::abort();
  }
  return 0;
}
