#include "tilenorm/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "tilenorm/status.h"

namespace tilenorm {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "f64";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF64: return 8;
  }
  return 0;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

int64_t Shape::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < dims_.size(); ++i) n *= dims_[i];
  return n;
}

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
  // Round up to whole 64-byte lines so aligned_alloc's size rule holds and SIMD tails stay in
  // bounds of the allocation; at least one line so an empty tensor still owns storage.
  size_t bytes = ((nbytes() + 63) / 64) * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(p);
}

double tensor_get(ConstTensorView t, int64_t i) {
  switch (t.dtype) {
    case DType::kF32: return t.as<float>()[i];
    case DType::kBF16: return bf16_to_float(t.as<bf16>()[i]);
    case DType::kF64: return t.as<double>()[i];
  }
  return 0;
}

double Tensor::get(int64_t i) const { return tensor_get(view(), i); }

void Tensor::set(int64_t i, double v) {
  switch (dtype_) {
    case DType::kF32: data<float>()[i] = static_cast<float>(v); break;
    case DType::kBF16: data<bf16>()[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::kF64: data<double>()[i] = v; break;
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
