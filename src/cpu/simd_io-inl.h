// The SIMD I/O layer of the CPU kernels, per Highway target: f32/bf16 vector loads and stores
// (streaming or not) with partial tails, the f32 -> bf16 conversion, lane sums. Include it after
// hwy/foreach_target.h in a file compiled once per target.

// Not per target.
#ifndef TILENORM_CPU_SIMD_IO_ONCE
#define TILENORM_CPU_SIMD_IO_ONCE
namespace tilenorm::cpu {
// Whether the CPU has avx512_bf16 (its f32 -> bf16 conversion instruction).
extern const bool g_avx512bf16;
}  // namespace tilenorm::cpu
#endif

// Per target: the guard toggles with each re-inclusion by foreach_target.h.
#if defined(TILENORM_CPU_SIMD_IO_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TILENORM_CPU_SIMD_IO_INL_H_
#undef TILENORM_CPU_SIMD_IO_INL_H_
#else
#define TILENORM_CPU_SIMD_IO_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "tilenorm/bf16.h"

HWY_BEFORE_NAMESPACE();
namespace tilenorm::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Largest vector in elements of any target, for the tail buffers.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

HWY_INLINE VF LoadV(DF d, const float* p) { return hn::LoadU(d, p); }
HWY_INLINE VF LoadV(DF d, const bf16* p) {
  const hn::Rebind<uint16_t, DF> du16;
  const hn::RebindToUnsigned<DF> du32;
  const auto bits = hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p));
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits)));
}

// f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN (as float_to_bf16).
// avx512_bf16's vcvtneps2bf16 does it in one instruction (it also flushes f32 denormals, below
// 1.2e-38, to zero). Highway 1.0 has no target with that extension, hence the asm and the
// run-time flag.
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> ToBf16(VF v) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (g_avx512bf16) {
    __m256i out;
    asm("vcvtneps2bf16 %1, %0" : "=v"(out) : "v"(v.raw));
    return hn::Vec<hn::Rebind<uint16_t, DF>>{out};
  }
#endif
  const hn::RebindToUnsigned<DF> du32;
  const hn::RebindToSigned<DF> di32;
  const hn::Rebind<uint16_t, DF> du16;
  const auto u = hn::BitCast(du32, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du32, 1));
  auto r = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du32, 0x7fff), lsb)));
  const auto nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du32, 0x40));
  r = hn::IfThenElse(hn::RebindMask(du32, hn::IsNaN(v)), nan, r);
  return hn::DemoteTo(du16, hn::BitCast(di32, r));
}

// v rounded to T's precision as StoreV stores it, back in f32 lanes.
template <typename T>
HWY_INLINE VF RoundTo(DF d, VF v) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    const hn::RebindToUnsigned<DF> du32;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, ToBf16(v))));
  }
}

template <bool kStream>
HWY_INLINE void StoreV(DF d, VF v, float* p) {
  if constexpr (kStream) {
    hn::Stream(v, d, p);
  } else {
    hn::StoreU(v, d, p);
  }
}
template <bool kStream>
HWY_INLINE void StoreV(DF /*d*/, VF v, bf16* p) {
  const hn::Rebind<uint16_t, DF> du16;
  auto* q = reinterpret_cast<uint16_t*>(p);
  if constexpr (kStream) {
    hn::Stream(ToBf16(v), du16, q);
  } else {
    hn::StoreU(ToBf16(v), du16, q);
  }
}

// The last n < Lanes elements: masked loads/stores where the target has ones that never touch
// the masked-off lanes (a store must not write a neighbour's element, which another thread may
// own), else a zero-padded buffer.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr bool kMasked16 = true;
#else
constexpr bool kMasked16 = false;
#endif
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
constexpr bool kMasked32 = true;
#else
constexpr bool kMasked32 = false;
#endif

template <typename T>
HWY_INLINE VF LoadTail(DF d, const T* p, size_t n) {
  if constexpr (sizeof(T) == 4 && kMasked32) {
    return hn::MaskedLoad(hn::FirstN(d, n), d, reinterpret_cast<const float*>(p));
  } else if constexpr (sizeof(T) == 2 && kMasked16) {
    const hn::Rebind<uint16_t, DF> du16;
    const hn::RebindToUnsigned<DF> du32;
    const auto bits =
        hn::MaskedLoad(hn::FirstN(du16, n), du16, reinterpret_cast<const uint16_t*>(p));
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits)));
  } else {
    alignas(64) T buf[kMaxLanes] = {};
    for (size_t i = 0; i < n; ++i) buf[i] = p[i];
    return LoadV(d, buf);
  }
}
template <typename T>
HWY_INLINE void StoreTail(DF d, VF v, T* p, size_t n) {
  if constexpr (sizeof(T) == 4 && kMasked32) {
    hn::BlendedStore(v, hn::FirstN(d, n), d, reinterpret_cast<float*>(p));
  } else if constexpr (sizeof(T) == 2 && kMasked16) {
    const hn::Rebind<uint16_t, DF> du16;
    hn::BlendedStore(ToBf16(v), hn::FirstN(du16, n), du16, reinterpret_cast<uint16_t*>(p));
  } else {
    alignas(64) T buf[kMaxLanes];
    StoreV<false>(d, v, buf);
    for (size_t i = 0; i < n; ++i) p[i] = buf[i];
  }
}

HWY_INLINE double Sum(DF d, VF v) { return static_cast<double>(hn::GetLane(hn::SumOfLanes(d, v))); }

HWY_INLINE float ToFloat(float v) { return v; }
HWY_INLINE float ToFloat(bf16 v) { return bf16_to_float(v); }

// Hints the next row into L2 while this one is computed from cache, so a single thread keeps
// DRAM busy instead of alternating between loading a row and working on it.
template <typename T>
HWY_INLINE void PrefetchAhead(const T* p, ptrdiff_t ahead) {
  if (ahead != 0) __builtin_prefetch(p + ahead, 0, 2);
}

// Output rows may start anywhere; streaming stores need vector-aligned addresses.
template <typename T>
bool Aligned(const T* p, int64_t C) {
  const size_t bytes = hn::Lanes(DF()) * sizeof(T);
  return reinterpret_cast<uintptr_t>(p) % bytes == 0 && (C * sizeof(T)) % bytes == 0;
}

// out[i] = float(in[i]) for i in [i0, i1).
inline void Bf16ToFloat(const bf16* in, float* out, int64_t i0, int64_t i1) {
  const DF d;
  const auto N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = i0;
  for (; i + N <= i1; i += N) hn::StoreU(LoadV(d, in + i), d, out + i);
  for (; i < i1; ++i) out[i] = bf16_to_float(in[i]);
}

}  // namespace tilenorm::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // TILENORM_CPU_SIMD_IO_INL_H_
