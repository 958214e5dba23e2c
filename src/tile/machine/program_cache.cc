#include "tile/machine/program_cache.h"

#include "tile/machine/device.h"

namespace tilenorm::tile {

ProgramHash& ProgramHash::add_bytes(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ull;
  return *this;
}

ProgramCache::ProgramCache() = default;
ProgramCache::~ProgramCache() = default;

CachedProgram* ProgramCache::find(uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  return &it->second;
}

CachedProgram& ProgramCache::insert(uint64_t key, CachedProgram entry) {
  return entries_.insert_or_assign(key, std::move(entry)).first->second;
}

void ProgramCache::erase(uint64_t key) { entries_.erase(key); }

void ProgramCache::clear() {
  entries_.clear();
  hits_ = misses_ = 0;
}

}  // namespace tilenorm::tile
