// Tensors: a shape, a dtype, and 64-byte aligned owning storage (Tensor) or a borrowed pointer
// (TensorView / ConstTensorView). Row-major (C order); LayerNorm normalizes over the last dim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tilenorm/bf16.h"

namespace tilenorm {

enum class DType { kF32, kBF16, kF64 };

const char* dtype_name(DType dtype);  // "f32", "bf16", "f64"
size_t dtype_size(DType dtype);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::kF32;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::kBF16;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kF64;
}

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  size_t rank() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  // Product of the dims (0 when any dim is 0); nullopt when a dim is negative or the product
  // overflows int64. Untrusted shapes are checked with this before numel() or rows().
  std::optional<int64_t> checked_numel() const;
  // checked_numel() of a shape known to be valid: a negative dim or an overflow aborts.
  int64_t numel() const;
  // Length of the normalized (last) dim; 0 for rank 0.
  int64_t cols() const { return dims_.empty() ? 0 : dims_.back(); }
  // Product of the leading dims (1 for rank 1): the number of normalized rows. Aborts like
  // numel() on a negative dim or an overflow.
  int64_t rows() const;
  // The leading dims alone: the shape of mean and rstd.
  Shape leading() const;
  std::string to_string() const;  // "[4, 100, 8192]"
  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

// Read-only borrowed tensor.
struct ConstTensorView {
  const void* data = nullptr;
  Shape shape;
  DType dtype = DType::kF32;

  bool empty() const { return data == nullptr; }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
};

// Writable borrowed tensor.
struct TensorView {
  void* data = nullptr;
  Shape shape;
  DType dtype = DType::kF32;

  bool empty() const { return data == nullptr; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  operator ConstTensorView() const { return {data, shape, dtype}; }
};

// Owning tensor; storage is 64-byte aligned and zero-initialised. A shape with a negative dim
// aborts (TN_CHECK); one whose byte size overflows throws std::bad_alloc, as a failed allocation.
class Tensor {
 public:
  Tensor() = default;
  Tensor(Shape shape, DType dtype);

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return data_ != nullptr; }

  void* raw() { return data_.get(); }
  const void* raw() const { return data_.get(); }
  template <typename T>
  T* data() {
    return static_cast<T*>(raw());
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(raw());
  }

  TensorView view() { return {raw(), shape_, dtype_}; }
  ConstTensorView view() const { return {raw(), shape_, dtype_}; }
  ConstTensorView cview() const { return view(); }

  // Element i converted to double / written from double (rounded to the dtype).
  double get(int64_t i) const;
  void set(int64_t i, double v);
  // Fill every element with v (NaN allowed: outputs are pre-poisoned in tests).
  void fill(double v);
  // A copy converted to `dtype` (bf16 by round-to-nearest-even).
  Tensor to(DType dtype) const;

 private:
  struct Free {
    void operator()(void* p) const;
  };
  Shape shape_;
  DType dtype_ = DType::kF32;
  std::unique_ptr<void, Free> data_;
};

// Element i of any view as double.
double tensor_get(const ConstTensorView& t, int64_t i);

}  // namespace tilenorm
