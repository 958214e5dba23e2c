#include "tilenorm/tensor.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

#include "tilenorm/status.h"

namespace tilenorm {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kBF16:
      return "bf16";
    case DType::kF64:
      return "f64";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kBF16:
      return 2;
    case DType::kF64:
      return 8;
  }
  return 0;
}

namespace {

// Product of dims[0, n): 0 when a dim is 0 (whatever the others are), nullopt when a dim is
// negative or the product overflows.
std::optional<int64_t> checked_product(const std::vector<int64_t>& dims, size_t n) {
  bool zero = false;
  for (size_t i = 0; i < n; ++i) {
    if (dims[i] < 0) return std::nullopt;
    zero = zero || dims[i] == 0;
  }
  if (zero) return 0;
  int64_t p = 1;
  for (size_t i = 0; i < n; ++i)
    if (__builtin_mul_overflow(p, dims[i], &p)) return std::nullopt;
  return p;
}

int64_t valid_product(const Shape& s, size_t n) {
  const std::optional<int64_t> p = checked_product(s.dims(), n);
  TN_CHECK(p.has_value(), "shape " + s.to_string() + " has a negative dim or overflows int64");
  return *p;
}

}  // namespace

std::optional<int64_t> Shape::checked_numel() const { return checked_product(dims_, dims_.size()); }

int64_t Shape::numel() const { return valid_product(*this, dims_.size()); }

int64_t Shape::rows() const { return valid_product(*this, dims_.empty() ? 0 : dims_.size() - 1); }

Shape Shape::leading() const {
  if (dims_.size() <= 1) return Shape{1};
  return Shape(std::vector<int64_t>(dims_.begin(), dims_.end() - 1));
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

void Tensor::Free::operator()(void* p) const { std::free(p); }

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  for (int64_t d : shape_.dims()) TN_CHECK(d >= 0, "negative dimension in " + shape_.to_string());
  const std::optional<int64_t> n = shape_.checked_numel();
  if (!n || *n > PTRDIFF_MAX / 2 / static_cast<int64_t>(dtype_size(dtype_))) throw std::bad_alloc();
  // Round up to whole 64-byte lines so aligned_alloc's size rule holds and SIMD tails stay in
  // bounds of the allocation; at least one line so an empty tensor still owns storage.
  size_t bytes = ((nbytes() + 63) / 64) * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(p);
}

double tensor_get(const ConstTensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::kF32:
      return t.as<float>()[i];
    case DType::kBF16:
      return bf16_to_float(t.as<bf16>()[i]);
    case DType::kF64:
      return t.as<double>()[i];
  }
  return 0;
}

double Tensor::get(int64_t i) const { return tensor_get(view(), i); }

void Tensor::set(int64_t i, double v) {
  switch (dtype_) {
    case DType::kF32:
      data<float>()[i] = static_cast<float>(v);
      break;
    case DType::kBF16:
      data<bf16>()[i] = float_to_bf16(static_cast<float>(v));
      break;
    case DType::kF64:
      data<double>()[i] = v;
      break;
  }
}

void Tensor::fill(double v) {
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) set(i, v);
}

Tensor Tensor::to(DType dtype) const {
  Tensor out(shape_, dtype);
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) out.set(i, get(i));
  return out;
}

}  // namespace tilenorm
