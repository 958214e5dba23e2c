// bfloat16 <-> float conversions: round-to-nearest-even (the default) and truncation (named).
#pragma once

#include <cstdint>
#include <cstring>

namespace tilenorm {

// Raw bf16 bits: 1 sign, 8 exponent, 7 mantissa bits (the top half of an IEEE float32).
struct bf16 {
  uint16_t bits = 0;
};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float float_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float bf16_to_float(bf16 h) { return float_from_bits(uint32_t{h.bits} << 16); }

// Round to nearest, ties to even. NaN stays NaN (quiet bit forced so rounding cannot make it Inf).
inline bf16 float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// Truncation (drops the low 16 bits): what tt-metal's host helper does when it packs a bf16
// scaler such as 1/C; the tile machine's fidelity tests need it. NaN stays NaN.
inline bf16 float_to_bf16_truncate(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// Round a float to the nearest bf16 value, returned as float.
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

}  // namespace tilenorm
