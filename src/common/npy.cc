#include "common/npy.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <vector>

namespace tilenorm {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
// A header longer than this is refused before it is read (a rank-1M shape fits well within it).
constexpr size_t kMaxHeaderLen = size_t{16} << 20;
// Conversions (f2/f8 read as f32, bf16 written as f4) go through a buffer of this size, so they
// cost no memory proportional to the tensor.
constexpr size_t kChunkBytes = size_t{1} << 20;

std::string errno_text() { return std::strerror(errno); }

// Half precision (IEEE binary16) to float.
float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

// The header's Python dict literal, as NumPy writes it and as strictly as NumPy reads it:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

class HeaderParser {
 public:
  explicit HeaderParser(const std::string& s) : s_(s) {}

  // "" on success, else the problem.
  std::string parse(Header* h) {
    skip_space();
    if (!eat('{')) return "header is not a dict";
    bool have_descr = false, have_order = false, have_shape = false;
    for (;;) {
      skip_space();
      if (eat('}')) break;
      std::string key;
      if (!parse_string(&key)) return "malformed header key";
      skip_space();
      if (!eat(':')) return "malformed header: missing ':'";
      skip_space();
      bool* seen = key == "descr"           ? &have_descr
                   : key == "fortran_order" ? &have_order
                   : key == "shape"         ? &have_shape
                                            : nullptr;
      if (seen == nullptr) return "unknown header key '" + key + "'";
      if (*seen) return "header repeats the key '" + key + "'";
      *seen = true;
      std::string err;
      if (key == "descr") {
        if (!parse_string(&h->descr)) return "descr is not a string (structured dtype?)";
      } else if (key == "fortran_order") {
        if (eat_word("True")) {
          h->fortran_order = true;
        } else if (!eat_word("False")) {
          return "fortran_order is neither True nor False";
        }
      } else if (err = parse_shape(&h->shape); !err.empty()) {
        return err;
      }
      skip_space();
      if (eat('}')) break;
      if (!eat(',')) return "malformed header: missing ',' after '" + key + "'";
    }
    skip_space();
    if (i_ != s_.size()) return "text after the header's closing '}'";
    if (!have_descr || !have_order || !have_shape)
      return "header lacks descr, fortran_order or shape";
    return "";
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool eat_word(const char* w) {
    const size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool is_digit() const { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; }

  bool parse_string(std::string* out) {
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return false;
    const char q = s_[i_++];
    const size_t end = s_.find(q, i_);
    if (end == std::string::npos) return false;
    *out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return true;
  }

  // A Python tuple of non-negative integers: (), (3,), (2, 3) or (2, 3,).
  std::string parse_shape(std::vector<int64_t>* shape) {
    if (!eat('(')) return "shape is not a tuple";
    for (;;) {
      skip_space();
      if (eat(')')) break;
      if (!is_digit()) return "shape holds a non-integer";
      if (s_[i_] == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9')
        return "shape dimension has a leading zero";
      int64_t d = 0;
      while (is_digit()) {
        if (__builtin_mul_overflow(d, 10, &d) || __builtin_add_overflow(d, s_[i_++] - '0', &d))
          return "shape dimension too large";
      }
      eat('L');  // Python 2 long
      shape->push_back(d);
      skip_space();
      if (eat(')')) {
        if (shape->size() == 1) return "shape (n) is not a tuple (write (n,))";
        break;
      }
      if (!eat(',')) return "shape: missing ',' between dimensions";
    }
    return "";
  }

  const std::string& s_;
  size_t i_ = 0;
};

// What the fixed part and the header of a .npy file say about its payload.
struct Layout {
  size_t data_offset = 0;  // payload start
  size_t src_size = 0;     // bytes per element in the file
  std::string descr;
  Shape shape;
  int64_t numel = 0;
  uint64_t payload_bytes = 0;
};

// Reads the magic and version from the first bytes (at least 12 or the whole file): "" and
// *header_start / *header_len, or the problem.
std::string parse_preamble(const char* p, size_t avail, size_t* header_start, size_t* header_len) {
  if (avail < 10 || std::memcmp(p, kMagic, 6) != 0) return "not a .npy file (bad magic)";
  const unsigned major = static_cast<unsigned char>(p[6]);
  if (major == 1) {
    *header_len = static_cast<unsigned char>(p[8]) | (static_cast<unsigned char>(p[9]) << 8);
    *header_start = 10;
  } else if (major == 2 || major == 3) {
    if (avail < 12) return "truncated header";
    *header_len = 0;
    for (int k = 3; k >= 0; --k)
      *header_len = (*header_len << 8) | static_cast<unsigned char>(p[8 + k]);
    *header_start = 12;
  } else {
    return "unsupported .npy format version " + std::to_string(major);
  }
  if (*header_len > kMaxHeaderLen)
    return fmt::format("header of {} bytes is over the {} byte limit", *header_len, kMaxHeaderLen);
  return "";
}

// Parses the header text into *l; checks the element count and byte size for overflow (as NumPy
// does: the product of the non-zero dims must fit) before anything is allocated.
std::string parse_layout(const std::string& text, Layout* l) {
  Header h;
  if (std::string err = HeaderParser(text).parse(&h); !err.empty()) return err;
  if (h.fortran_order) return "Fortran-order arrays are not supported (save in C order)";
  if (h.descr == "<f4") {
    l->src_size = 4;
  } else if (h.descr == "<f8") {
    l->src_size = 8;
  } else if (h.descr == "<f2") {
    l->src_size = 2;
  } else if (h.descr.size() >= 2 && h.descr[0] == '>') {
    return "big-endian dtype '" + h.descr + "' is not supported";
  } else {
    return "dtype '" + h.descr + "' is not supported (expected <f4, <f8 or <f2)";
  }
  // Bytes of the largest tensor it may become (f64), so every later size computation fits.
  int64_t nonzero = 1, bytes = 0;
  bool has_zero = false;
  for (int64_t d : h.shape) {
    if (d == 0) has_zero = true;
    if (d != 0 && __builtin_mul_overflow(nonzero, d, &nonzero)) nonzero = -1;
    if (nonzero < 0 || __builtin_mul_overflow(nonzero, int64_t{8}, &bytes))
      return "shape " + Shape(h.shape).to_string() + " has too many elements";
  }
  l->descr = h.descr;
  l->numel = has_zero ? 0 : nonzero;
  l->shape = Shape(std::move(h.shape));
  l->payload_bytes = static_cast<uint64_t>(l->numel) * l->src_size;
  return "";
}

std::string payload_mismatch(const Layout& l, uint64_t payload) {
  return fmt::format("payload is {} bytes, shape {} of {} needs {} bytes", payload,
                     l.shape.to_string(), l.descr, l.payload_bytes);
}

// Converts n file elements at `src` into t's elements [first, first + n).
void decode(const char* src, size_t src_size, int64_t n, Tensor* t, int64_t first) {
  for (int64_t i = 0; i < n; ++i) {
    double v;
    if (src_size == 4) {
      float f;
      std::memcpy(&f, src + 4 * i, 4);
      v = f;
    } else if (src_size == 8) {
      std::memcpy(&v, src + 8 * i, 8);
    } else {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      v = half_to_float(b);
    }
    t->set(first + i, v);
  }
}

bool same_layout(size_t src_size, DType dtype) {
  return (src_size == 4 && dtype == DType::kF32) || (src_size == 8 && dtype == DType::kF64);
}

Status allocate(const std::string& name, const Layout& l, DType dtype, Tensor* t) {
  try {
    *t = Tensor(l.shape, dtype);
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted(
        fmt::format("{}: out of memory allocating {} bytes for shape {} as {}", name,
                    static_cast<uint64_t>(l.numel) * dtype_size(dtype), l.shape.to_string(),
                    dtype_name(dtype)));
  }
  return {};
}

// Reads exactly n bytes (fewer only at end of file); -1 on error.
ssize_t read_full(int fd, void* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, static_cast<char*>(buf) + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

bool write_full(int fd, const void* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::write(fd, static_cast<const char*>(buf) + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// The header of t's .npy image: version 1.0 while the header length fits 16 bits, else 2.0;
// padded with spaces so the payload starts at a multiple of 64 bytes.
std::string npy_header(const ConstTensorView& t) {
  const bool f64 = t.dtype == DType::kF64;
  std::string dict =
      std::string("{'descr': '") + (f64 ? "<f8" : "<f4") + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape.rank(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(t.shape[i]);
  }
  if (t.shape.rank() == 1) dict += ",";  // a 1-tuple is "(3,)"
  dict += "), }";
  auto padded = [&](size_t prefix) {
    const size_t unpadded = prefix + dict.size() + 1;
    return dict.size() + (64 - unpadded % 64) % 64 + 1;
  };
  const bool v1 = padded(10) <= 0xffff;
  const size_t len = padded(v1 ? 10 : 12);
  dict.resize(len - 1, ' ');
  dict += '\n';
  std::string bytes(kMagic, 6);
  bytes += v1 ? '\x01' : '\x02';
  bytes += '\x00';
  for (int k = 0; k < (v1 ? 2 : 4); ++k) bytes += static_cast<char>((len >> (8 * k)) & 0xff);
  return bytes + dict;
}

// Calls emit(data, size) over t's payload: straight from the tensor for f32 and f64, through a
// fixed-size buffer for bf16 (widened to f32 exactly). Stops at the first false.
template <typename Emit>
bool npy_payload(const ConstTensorView& t, Emit emit) {
  const int64_t n = t.shape.numel();
  if (t.dtype != DType::kBF16)
    return emit(static_cast<const char*>(t.data), static_cast<size_t>(n) * dtype_size(t.dtype));
  std::vector<float> buf(kChunkBytes / sizeof(float));
  for (int64_t i = 0; i < n;) {
    const int64_t m = std::min<int64_t>(n - i, static_cast<int64_t>(buf.size()));
    for (int64_t k = 0; k < m; ++k) buf[k] = bf16_to_float(t.as<bf16>()[i + k]);
    if (!emit(reinterpret_cast<const char*>(buf.data()), static_cast<size_t>(m) * sizeof(float)))
      return false;
    i += m;
  }
  return true;
}

// Temporaries being written, for removal when SIGINT or SIGTERM ends the process. A fixed table
// of fixed-size paths: the handler may only read memory and call unlink.
constexpr int kMaxTemps = 64;
constexpr size_t kMaxTempPath = 4096;
char g_temp_paths[kMaxTemps][kMaxTempPath];
std::atomic<bool> g_temp_live[kMaxTemps];
// While > 0 (creating or renaming outputs) a signal is held in g_pending_signal and acted on at
// the end, so outputs are never left half-renamed.
std::atomic<int> g_defer{0};
std::atomic<int> g_pending_signal{0};

void remove_temps_and_die(int sig) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_live[i].load()) ::unlink(g_temp_paths[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

extern "C" void on_terminating_signal(int sig) {
  if (g_defer.load() > 0) {
    g_pending_signal.store(sig);
    return;
  }
  remove_temps_and_die(sig);
}

// Holds signals for its lifetime; one that came meanwhile ends the process at the end.
class DeferSignals {
 public:
  DeferSignals() { ++g_defer; }
  ~DeferSignals() {
    if (--g_defer == 0)
      if (const int sig = g_pending_signal.exchange(0)) remove_temps_and_die(sig);
  }
};

// A registry slot for path, or -1 when the table is full or the path too long (the file is then
// written all the same, only not removed on a signal).
int register_temp(const std::string& path) {
  if (path.size() >= kMaxTempPath) return -1;
  for (int i = 0; i < kMaxTemps; ++i) {
    if (g_temp_live[i].load()) continue;
    std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
    g_temp_live[i].store(true);
    return i;
  }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0) g_temp_live[slot].store(false);
}

// A new name `base.tmp.XXXXXXXX` made by make(name), which must fail with EEXIST when the name
// is taken (O_EXCL, link): an existing file or symlink is never followed or replaced.
template <typename Make>
bool unique_name(const std::string& base, std::string* name, Make make) {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ ::getpid());
  for (int attempt = 0; attempt < 100; ++attempt) {
    *name = fmt::format("{}.tmp.{:08x}", base, static_cast<uint32_t>(rng()));
    if (make(*name)) return true;
    if (errno != EEXIST) return false;
  }
  return false;
}

struct Output {
  std::string target, temp, backup;
  int slot = -1;
};

// Creates o->temp exclusively beside o->target and writes t's image to it.
Status write_temp(const ConstTensorView& t, Output* o) {
  Fd f;
  {
    DeferSignals hold;  // a signal between create and register would leave the file behind
    const bool made = unique_name(o->target, &o->temp, [&](const std::string& name) {
      f.fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
      return f.fd >= 0;
    });
    if (!made) {
      const std::string why = errno_text();
      o->temp.clear();  // not ours
      return Status::io_error(o->target + ": cannot create (" + why + ")");
    }
    o->slot = register_temp(o->temp);
  }
  const std::string header = npy_header(t);
  auto emit = [&](const char* p, size_t n) { return write_full(f.fd, p, n); };
  if (!emit(header.data(), header.size()) || !npy_payload(t, emit) || ::close(f.fd) != 0) {
    f.fd = -1;
    return Status::io_error(o->target + ": write failed (" + errno_text() + ")");
  }
  f.fd = -1;
  return {};
}

// Renames every temp onto its target, or none: an existing target is first linked to a backup
// name, and a failure puts every replaced target back.
Status commit(std::vector<Output>& outs) {
  size_t done = 0;
  Status err;
  for (; done < outs.size(); ++done) {
    Output& o = outs[done];
    struct stat st;
    if (::lstat(o.target.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        err = Status::io_error(o.target + ": cannot replace a directory");
        break;
      }
      if (!unique_name(o.target, &o.backup, [&](const std::string& name) {
            return ::link(o.target.c_str(), name.c_str()) == 0;
          })) {
        o.backup.clear();
        err = Status::io_error(o.target + ": cannot replace (" + errno_text() + ")");
        break;
      }
    } else if (errno != ENOENT) {
      err = Status::io_error(o.target + ": cannot replace (" + errno_text() + ")");
      break;
    }
    if (::rename(o.temp.c_str(), o.target.c_str()) != 0) {
      err = Status::io_error(o.target + ": cannot rename into place (" + errno_text() + ")");
      if (!o.backup.empty()) ::unlink(o.backup.c_str());
      o.backup.clear();
      break;
    }
  }
  for (size_t i = 0; i < outs.size(); ++i) {
    Output& o = outs[i];
    if (i >= done) {
      ::unlink(o.temp.c_str());
    } else if (err.ok()) {
      if (!o.backup.empty()) ::unlink(o.backup.c_str());
    } else if (!o.backup.empty()) {
      ::rename(o.backup.c_str(), o.target.c_str());
    } else {
      ::unlink(o.target.c_str());
    }
    unregister_temp(o.slot);
  }
  return err;
}

}  // namespace

Status npy_parse(const std::string& name, const std::string& bytes, DType dtype, Tensor* out) {
  auto fail = [&](const std::string& why) { return Status::io_error(name + ": " + why); };
  size_t header_start = 0, header_len = 0;
  if (std::string e = parse_preamble(bytes.data(), bytes.size(), &header_start, &header_len);
      !e.empty())
    return fail(e);
  if (header_start + header_len > bytes.size()) return fail("truncated header");
  Layout l;
  if (std::string e = parse_layout(bytes.substr(header_start, header_len), &l); !e.empty())
    return fail(e);
  const size_t payload = bytes.size() - header_start - header_len;
  if (payload != l.payload_bytes) return fail(payload_mismatch(l, payload));
  Tensor t;
  TN_RETURN_IF_ERROR(allocate(name, l, dtype, &t));
  decode(bytes.data() + header_start + header_len, l.src_size, l.numel, &t, 0);
  *out = std::move(t);
  return {};
}

Status npy_read(const std::string& path, DType dtype, Tensor* out) {
  auto fail = [&](const std::string& why) { return Status::io_error(path + ": " + why); };
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return fail("cannot open (" + errno_text() + ")");
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return fail("cannot stat (" + errno_text() + ")");
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  char pre[12];
  const ssize_t got = read_full(f.fd, pre, sizeof pre);
  if (got < 0) return fail("read error (" + errno_text() + ")");
  size_t header_start = 0, header_len = 0;
  if (std::string e = parse_preamble(pre, static_cast<size_t>(got), &header_start, &header_len);
      !e.empty())
    return fail(e);
  if (header_start + header_len > file_size) return fail("truncated header");
  std::string text(header_len, '\0');
  std::memcpy(text.data(), pre + header_start,
              std::min<size_t>(header_len, sizeof pre - header_start));
  if (header_len > sizeof pre - header_start) {
    const size_t rest = header_len - (sizeof pre - header_start);
    if (read_full(f.fd, text.data() + (sizeof pre - header_start), rest) !=
        static_cast<ssize_t>(rest))
      return fail("truncated header");
  } else if (::lseek(f.fd, static_cast<off_t>(header_start + header_len), SEEK_SET) < 0) {
    return fail("read error (" + errno_text() + ")");
  }
  Layout l;
  if (std::string e = parse_layout(text, &l); !e.empty()) return fail(e);
  const uint64_t payload = file_size - header_start - header_len;
  if (payload != l.payload_bytes) return fail(payload_mismatch(l, payload));
  Tensor t;
  TN_RETURN_IF_ERROR(allocate(path, l, dtype, &t));
  if (same_layout(l.src_size, dtype)) {
    if (read_full(f.fd, t.raw(), l.payload_bytes) != static_cast<ssize_t>(l.payload_bytes))
      return fail("read error or file shrank while reading (" + errno_text() + ")");
  } else {
    std::vector<char> buf(kChunkBytes);
    const int64_t per_chunk = static_cast<int64_t>(kChunkBytes / l.src_size);
    for (int64_t i = 0; i < l.numel; i += per_chunk) {
      const int64_t m = std::min(per_chunk, l.numel - i);
      const size_t bytes = static_cast<size_t>(m) * l.src_size;
      if (read_full(f.fd, buf.data(), bytes) != static_cast<ssize_t>(bytes))
        return fail("read error or file shrank while reading (" + errno_text() + ")");
      decode(buf.data(), l.src_size, m, &t, i);
    }
  }
  *out = std::move(t);
  return {};
}

std::string npy_encode(const ConstTensorView& t) {
  std::string bytes = npy_header(t);
  npy_payload(t, [&](const char* p, size_t n) {
    bytes.append(p, n);
    return true;
  });
  return bytes;
}

Status npy_write(const std::string& path, const ConstTensorView& t) {
  return npy_write_all({{path, t}});
}

Status npy_write_all(const std::vector<std::pair<std::string, ConstTensorView>>& files) {
  std::vector<Output> outs(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    outs[i].target = files[i].first;
    Status s = write_temp(files[i].second, &outs[i]);
    if (!s.ok()) {
      DeferSignals hold;
      for (size_t k = 0; k <= i; ++k) {
        if (!outs[k].temp.empty()) ::unlink(outs[k].temp.c_str());
        unregister_temp(outs[k].slot);
      }
      return s;
    }
  }
  DeferSignals hold;
  return commit(outs);
}

void npy_install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_terminating_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) ::sigaction(sig, &sa, nullptr);
  std::signal(SIGXFSZ, SIG_IGN);  // over a file size limit, write() fails with EFBIG instead
}

}  // namespace tilenorm
