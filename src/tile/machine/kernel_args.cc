// tt-metal style runtime args (get_arg_val / get_common_arg_val), whole-page NoC transfers by
// NoC address (TensorAccessor), and host-addressable L1.

#include "tile/machine/api/kernel_args.h"

#include <fmt/format.h>

#include <cstring>

#include "tile/machine/api/dprint.h"
#include "tile/machine/api/tensor_accessor.h"
#include "tile/machine/machine.h"

#if defined(__linux__) && defined(__x86_64__)
#include <sys/mman.h>
#define TILENORM_HOST_L1 1
#endif

namespace tilenorm::tile {

namespace {

uint64_t key_of(CoreCoord c) { return (uint64_t{c.y} << 32) | c.x; }

detail::KernelRuntime& running_kernel() {
  TN_CHECK(detail::t_kernel != nullptr, "a kernel API function was called outside a kernel");
  return *detail::t_kernel;
}

std::vector<std::byte> as_bytes(const std::vector<uint32_t>& words) {
  std::vector<std::byte> b(words.size() * sizeof(uint32_t));
  if (!words.empty()) std::memcpy(b.data(), words.data(), b.size());
  return b;
}

}  // namespace

void Program::set_runtime_arg_words(KernelHandle kernel, CoreCoord core,
                                    const std::vector<uint32_t>& words) {
  Impl& p = *impl_;
  auto fail = [&](std::string m) {
    if (p.status.ok()) p.status = Status::invalid_argument(std::move(m));
  };
  if (kernel.id >= p.kernels.size()) return fail("set_runtime_args: unknown kernel handle");
  KernelSpec& k = p.kernels[kernel.id];
  if (!k.cores.contains(core)) {
    return fail(fmt::format("set_runtime_args: kernel '{}' does not run on core {}", k.name,
                            core.to_string()));
  }
  k.core_args[key_of(core)] = as_bytes(words);
}

void Program::set_common_runtime_arg_words(KernelHandle kernel,
                                           const std::vector<uint32_t>& words) {
  Impl& p = *impl_;
  if (kernel.id >= p.kernels.size()) {
    if (p.status.ok())
      p.status = Status::invalid_argument("set_common_runtime_args: unknown kernel");
    return;
  }
  p.kernels[kernel.id].common_args = as_bytes(words);
}

Status host_addressable_l1_supported() {
#ifdef TILENORM_HOST_L1
  return Status::ok_status();
#else
  return Status::unsupported(
      "host-addressable L1 needs mmap(MAP_32BIT) (x86-64 Linux): kernels that cast L1 addresses "
      "to pointers cannot run on this host");
#endif
}

Status Program::use_host_addressable_l1() {
  TN_RETURN_IF_ERROR(host_addressable_l1_supported());
  impl_->host_l1 = true;
  return Status::ok_status();
}

namespace detail {

uint8_t* host_l1_map(uint32_t bytes) {
#ifdef TILENORM_HOST_L1
  struct Map {
    uint8_t* p = nullptr;
    size_t size = 0;
    ~Map() {
      if (p != nullptr) munmap(p, size);
    }
  };
  thread_local Map map;
  if (map.size < bytes) {
    if (map.p != nullptr) munmap(map.p, map.size);
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                   -1, 0);
    TN_CHECK(m != MAP_FAILED, "mmap(MAP_32BIT) of the core's L1 failed");
    map.p = static_cast<uint8_t*>(m);
    map.size = bytes;
  }
  return map.p;
#else
  (void)bytes;
  TN_CHECK(false, "host-addressable L1 is not supported on this host");
  return nullptr;
#endif
}

uint32_t runtime_arg_word(uint32_t index, bool common, SrcLoc loc) {
  KernelRuntime& k = running_kernel();
  const KernelSpec& s = *k.spec;
  const std::vector<std::byte>* words = &s.common_args;
  if (!common) {
    auto it = s.core_args.find(key_of(k.core->core));
    words = it == s.core_args.end() ? nullptr : &it->second;
  }
  const size_t n = words == nullptr ? 0 : words->size() / sizeof(uint32_t);
  const char* op = common ? "get_common_arg_val" : "get_arg_val";
  if (index >= n) {
    raise(ReportKind::kArgOutOfRange, op, -1, -1, loc,
          fmt::format("{}({}) but the host set {} {} arg{}{}", op, index, n,
                      common ? "common" : "runtime", n == 1 ? "" : "s",
                      common ? "" : " on this core"),
          true);
  }
  uint32_t w = 0;
  std::memcpy(&w, words->data() + size_t{index} * sizeof(uint32_t), sizeof w);
  return w;
}

namespace {

// The page of a whole-page transfer at `noc_addr`, or a fatal noc-bad-access report.
uint32_t whole_page(const KernelRuntime& k, uint64_t noc_addr, uint32_t bytes, const char* op,
                    const SrcLoc& loc) {
  const auto address = static_cast<uint32_t>(noc_addr >> 32);
  const auto offset = static_cast<uint32_t>(noc_addr);
  const DramBuffer* b = k.core->dram->find(address);
  if (b == nullptr) {
    raise(ReportKind::kNocBadAccess, op, -1, -1, loc,
          fmt::format("no DRAM buffer at address {:#x}", address), true);
  }
  if (offset % b->page_size != 0 || bytes != b->page_size) {
    raise(ReportKind::kNocBadAccess, op, -1, -1, loc,
          fmt::format("{} B at byte {} of the buffer at {:#x}: the tile machine models whole-page "
                      "transfers only (pages of {} B)",
                      bytes, offset, address, b->page_size),
          true);
  }
  return offset / b->page_size;
}

}  // namespace

void noc_read_bytes(uint64_t noc_addr, uint32_t l1_addr, uint32_t bytes, SrcLoc loc) {
  KernelRuntime& k = running_kernel();
  const uint32_t page = whole_page(k, noc_addr, bytes, "noc_async_read_page", loc);
  noc_read_tile(page, static_cast<uint32_t>(noc_addr >> 32), bytes, l1_addr, loc);
}

void noc_write_bytes(uint32_t l1_addr, uint64_t noc_addr, uint32_t bytes, SrcLoc loc) {
  KernelRuntime& k = running_kernel();
  const uint32_t page = whole_page(k, noc_addr, bytes, "noc_async_write_page", loc);
  noc_write_tile(page, static_cast<uint32_t>(noc_addr >> 32), bytes, l1_addr, loc);
}

}  // namespace detail
bool dprint_enabled() { return running_kernel().core->config->dprint; }

void dprint_write(std::string_view text) {
  detail::KernelRuntime& k = running_kernel();
  if (!k.core->config->dprint) return;
  for (size_t nl; (nl = text.find('\n')) != std::string_view::npos; text.remove_prefix(nl + 1)) {
    k.core->dprint += fmt::format("core {} {}: {}{}\n", k.core->core.to_string(),
                                  kernel_kind_name(k.kind), k.dprint_line, text.substr(0, nl));
    k.dprint_line.clear();
  }
  k.dprint_line += text;
}

}  // namespace tilenorm::tile
