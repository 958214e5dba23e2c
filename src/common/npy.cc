#include "common/npy.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

namespace tilenorm {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

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

// A tiny parser for the header's Python dict literal:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

void skip_space(const std::string& s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
}

bool parse_string(const std::string& s, size_t& i, std::string* out) {
  skip_space(s, i);
  if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return false;
  const char q = s[i++];
  const size_t end = s.find(q, i);
  if (end == std::string::npos) return false;
  *out = s.substr(i, end - i);
  i = end + 1;
  return true;
}

std::string parse_header(const std::string& text, Header* h) {
  size_t i = 0;
  skip_space(text, i);
  if (i >= text.size() || text[i] != '{') return "header is not a dict";
  ++i;
  bool have_descr = false, have_order = false, have_shape = false;
  for (;;) {
    skip_space(text, i);
    if (i < text.size() && text[i] == '}') break;
    std::string key;
    if (!parse_string(text, i, &key)) return "malformed header key";
    skip_space(text, i);
    if (i >= text.size() || text[i] != ':') return "malformed header: missing ':'";
    ++i;
    skip_space(text, i);
    if (key == "descr") {
      if (!parse_string(text, i, &h->descr)) return "descr is not a string (structured dtype?)";
      have_descr = true;
    } else if (key == "fortran_order") {
      if (text.compare(i, 4, "True") == 0) {
        h->fortran_order = true;
        i += 4;
      } else if (text.compare(i, 5, "False") == 0) {
        i += 5;
      } else {
        return "fortran_order is neither True nor False";
      }
      have_order = true;
    } else if (key == "shape") {
      if (i >= text.size() || text[i] != '(') return "shape is not a tuple";
      ++i;
      for (;;) {
        skip_space(text, i);
        if (i < text.size() && text[i] == ')') {
          ++i;
          break;
        }
        if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i])))
          return "shape holds a non-integer";
        int64_t d = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
          if (d > (int64_t{1} << 50)) return "shape dimension too large";
          d = d * 10 + (text[i++] - '0');
        }
        if (i < text.size() && text[i] == 'L') ++i;
        h->shape.push_back(d);
        skip_space(text, i);
        if (i < text.size() && text[i] == ',') ++i;
      }
      have_shape = true;
    } else {
      return "unknown header key '" + key + "'";
    }
    skip_space(text, i);
    if (i < text.size() && text[i] == ',') ++i;
  }
  if (!have_descr || !have_order || !have_shape)
    return "header lacks descr, fortran_order or shape";
  return "";
}

}  // namespace

Status npy_parse(const std::string& name, const std::string& bytes, DType dtype, Tensor* out) {
  auto fail = [&](const std::string& why) { return Status::io_error(name + ": " + why); };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    return fail("not a .npy file (bad magic)");
  const unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return fail("truncated header");
    header_len = 0;
    for (int k = 3; k >= 0; --k)
      header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + k]);
    header_start = 12;
  } else {
    return fail("unsupported .npy format version " + std::to_string(major));
  }
  if (header_start + header_len > bytes.size()) return fail("truncated header");
  Header h;
  const std::string err = parse_header(bytes.substr(header_start, header_len), &h);
  if (!err.empty()) return fail(err);
  if (h.fortran_order) return fail("Fortran-order arrays are not supported (save in C order)");
  size_t src_size;
  if (h.descr == "<f4") {
    src_size = 4;
  } else if (h.descr == "<f8") {
    src_size = 8;
  } else if (h.descr == "<f2") {
    src_size = 2;
  } else if (h.descr.size() >= 2 && h.descr[0] == '>') {
    return fail("big-endian dtype '" + h.descr + "' is not supported");
  } else {
    return fail("dtype '" + h.descr + "' is not supported (expected <f4, <f8 or <f2)");
  }
  Shape shape(h.shape);
  const size_t payload = bytes.size() - header_start - header_len;
  double numel = 1;  // in double first: a hostile shape must not overflow int64
  for (int64_t d : h.shape) numel *= static_cast<double>(d);
  if (numel * static_cast<double>(src_size) != static_cast<double>(payload)) {
    return fail("payload is " + std::to_string(payload) + " bytes, shape " + shape.to_string() +
                " of " + h.descr + " needs " +
                fmt::format("{:.0f}", numel * static_cast<double>(src_size)) + " bytes");
  }
  const int64_t n = shape.numel();
  Tensor t(shape, dtype);
  const char* src = bytes.data() + header_start + header_len;
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
    t.set(i, v);
  }
  *out = std::move(t);
  return {};
}

Status npy_read(const std::string& path, DType dtype, Tensor* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::io_error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::io_error(path + ": read error");
  return npy_parse(path, ss.str(), dtype, out);
}

std::string npy_encode(ConstTensorView t) {
  const bool f64 = t.dtype == DType::kF64;
  std::string dict =
      std::string("{'descr': '") + (f64 ? "<f8" : "<f4") + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape.rank(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(t.shape[i]);
  }
  if (t.shape.rank() == 1) dict += ",";  // a 1-tuple is "(3,)"
  dict += "), }";
  // Pad so the data starts at a multiple of 64 bytes; the header ends with '\n'.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(dict.size() & 0xff);
  bytes += static_cast<char>((dict.size() >> 8) & 0xff);
  bytes += dict;
  const int64_t n = t.shape.numel();
  const size_t header = bytes.size();
  bytes.resize(header + n * (f64 ? 8 : 4));
  char* dst = bytes.data() + header;
  for (int64_t i = 0; i < n; ++i) {
    if (f64) {
      const double v = tensor_get(t, i);
      std::memcpy(dst + 8 * i, &v, 8);
    } else {
      const float v = static_cast<float>(tensor_get(t, i));
      std::memcpy(dst + 4 * i, &v, 4);
    }
  }
  return bytes;
}

namespace {

std::string temp_name(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

Status write_file(const std::string& target, const std::string& tmp, const std::string& bytes) {
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  if (!f) return Status::io_error(target + ": cannot create (" + std::strerror(errno) + ")");
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.flush();
  if (!f) {
    std::remove(tmp.c_str());
    return Status::io_error(target + ": write failed (disk full?)");
  }
  return {};
}

}  // namespace

Status npy_write(const std::string& path, ConstTensorView t) { return npy_write_all({{path, t}}); }

Status npy_write_all(const std::vector<std::pair<std::string, ConstTensorView>>& files) {
  std::vector<std::string> temps;
  auto cleanup = [&] {
    for (const auto& t : temps) std::remove(t.c_str());
  };
  for (const auto& [path, t] : files) {
    temps.push_back(temp_name(path));
    Status s = write_file(path, temps.back(), npy_encode(t));
    if (!s.ok()) {
      temps.pop_back();
      cleanup();
      return s;
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (std::rename(temps[i].c_str(), files[i].first.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      cleanup();
      return Status::io_error(files[i].first + ": cannot rename into place (" + why + ")");
    }
  }
  return {};
}

}  // namespace tilenorm
