// Program cache of a device, as ttnn's: an op hashes the attributes its program depends on
// (shapes, formats, config, path); on a hit it reuses the built Program and only rewrites the
// runtime args (buffer addresses), on a miss it builds the program and stores it.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace tilenorm::tile {

class Program;
struct KernelHandle;

// FNV-1a over the bytes of each attribute added.
class ProgramHash {
 public:
  template <typename T>
  ProgramHash& add(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "hash plain values");
    return add_bytes(&value, sizeof(T));
  }
  ProgramHash& add(std::string_view s) { return add_bytes(s.data(), s.size()).add(s.size()); }
  uint64_t value() const { return h_; }

 private:
  ProgramHash& add_bytes(const void* p, size_t n);
  uint64_t h_ = 0xcbf29ce484222325ull;
};

// A built program and the kernel handles its op needs to rewrite the runtime args.
struct CachedProgram {
  std::unique_ptr<Program> program;
  std::vector<KernelHandle> kernels;
};

class ProgramCache {
 public:
  ProgramCache();
  ~ProgramCache();
  // The entry for `key`, or nullptr; counts a hit or a miss.
  CachedProgram* find(uint64_t key);
  // Stores a built program under `key` and returns it.
  CachedProgram& insert(uint64_t key, CachedProgram entry);
  // Drops the entry for `key`, if any (a program whose run failed is not kept).
  void erase(uint64_t key);
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  size_t size() const { return entries_.size(); }
  void clear();

 private:
  std::unordered_map<uint64_t, CachedProgram> entries_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace tilenorm::tile
