#include "common/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "test_util.h"

namespace tilenorm {
namespace {

std::string header_v1(const std::string& dict) {
  std::string d = dict;
  const size_t unpadded = 10 + d.size() + 1;
  d.append((64 - unpadded % 64) % 64, ' ');
  d += '\n';
  std::string h("\x93NUMPY\x01\x00", 8);
  h += static_cast<char>(d.size() & 0xff);
  h += static_cast<char>(d.size() >> 8);
  return h + d;
}

template <typename T>
std::string payload(std::initializer_list<T> v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

TEST(Npy, RoundTripKeepsShapeAndValues) {
  Tensor t(Shape{2, 3}, DType::kF32);
  for (int i = 0; i < 6; ++i) t.set(i, 0.25 * i - 0.5);
  const std::string bytes = npy_encode(t.cview());
  Tensor back;
  ASSERT_TRUE(npy_parse("t.npy", bytes, DType::kF32, &back).ok());
  EXPECT_EQ(back.shape(), (Shape{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back.get(i), 0.25 * i - 0.5);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(bytes.substr(10, dict.size()), dict);  // the header text as NumPy writes it
}

TEST(Npy, OneDimShapeIsAOneTuple) {
  Tensor t(Shape{4}, DType::kF32);
  const std::string bytes = npy_encode(t.cview());
  EXPECT_NE(bytes.find("'shape': (4,)"), std::string::npos);
  EXPECT_EQ(bytes.size() % 16, 0u);
  EXPECT_EQ((bytes.size() - 16) % 64, 0u);  // data starts 64-byte aligned
}

TEST(Npy, ReadsF8AndF2AndConverts) {
  Tensor t;
  const std::string f8 = header_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }") +
                         payload<double>({1.5, -3.0e-8});
  ASSERT_TRUE(npy_parse("a", f8, DType::kF64, &t).ok());
  EXPECT_EQ(t.get(0), 1.5);
  EXPECT_EQ(t.get(1), -3.0e-8);
  // binary16: 0x3C00 = 1.0, 0xC000 = -2.0, 0x0001 = 2^-24 (subnormal), 0x7C00 = inf
  const std::string f2 = header_v1("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }") +
                         payload<uint16_t>({0x3C00, 0xC000, 0x0001, 0x7C00});
  ASSERT_TRUE(npy_parse("b", f2, DType::kF32, &t).ok());
  EXPECT_EQ(t.get(0), 1.0);
  EXPECT_EQ(t.get(1), -2.0);
  EXPECT_EQ(t.get(2), std::ldexp(1.0, -24));
  EXPECT_TRUE(std::isinf(t.get(3)));
}

TEST(Npy, ReadsVersion2And3Headers) {
  for (char version : {'\x02', '\x03'}) {
    std::string d = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    const size_t unpadded = 12 + d.size() + 1;
    d.append((64 - unpadded % 64) % 64, ' ');
    d += '\n';
    std::string bytes("\x93NUMPY", 6);
    bytes += version;
    bytes += '\0';
    const uint32_t len = static_cast<uint32_t>(d.size());
    bytes.append(reinterpret_cast<const char*>(&len), 4);
    bytes += d + payload<float>({7.0f});
    Tensor t;
    ASSERT_TRUE(npy_parse("v", bytes, DType::kF32, &t).ok()) << int(version);
    EXPECT_EQ(t.get(0), 7.0);
  }
}

TEST(Npy, BadFilesGiveIoErrorsNamingFileAndProblem) {
  const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string good = header_v1(good_dict) + payload<float>({1, 2, 3, 4});
  struct Case {
    std::string bytes, expect;
  } cases[] = {
      {"", "bad magic"},
      {"not a numpy file at all", "bad magic"},
      {good.substr(0, 20), "truncated header"},
      {good.substr(0, good.size() - 1), "payload is 15 bytes"},
      {good + "xx", "payload is 18 bytes"},
      {header_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }") +
           good.substr(good.size() - 16),
       "Fortran-order"},
      {header_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }") +
           good.substr(good.size() - 16),
       "big-endian"},
      {header_v1("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }") +
           good.substr(good.size() - 16),
       "dtype '|O' is not supported"},
      {header_v1("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }") +
           good.substr(good.size() - 16),
       "dtype '<i4' is not supported"},
      {header_v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"),
       "descr is not a string"},
      {header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (a, 2), }"), "non-integer"},
      {header_v1("{'descr': '<f4', 'shape': (2, 2), }"), "lacks"},
      {header_v1("['descr', '<f4']"), "not a dict"},
      {header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 1048576, "
                 "1048576), }"),
       "has too many elements"},
  };
  for (const auto& c : cases) {
    Tensor t;
    const Status s = npy_parse("in.npy", c.bytes, DType::kF32, &t);
    EXPECT_EQ(s.code(), StatusCode::kIoError) << c.expect;
    EXPECT_NE(s.message().find("in.npy: "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
    EXPECT_FALSE(t.defined());
  }
}

// Header text NumPy refuses is refused here too, one case per quirk.
Status parse_dict(const std::string& dict, const std::string& data = std::string(16, '\0')) {
  Tensor t;
  return npy_parse("in.npy", header_v1(dict) + data, DType::kF32, &t);
}

void expect_rejected(const std::string& dict, const std::string& why,
                     const std::string& data = std::string(16, '\0')) {
  const Status s = parse_dict(dict, data);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << dict;
  EXPECT_NE(s.message().find(why), std::string::npos) << dict << ": " << s.message();
}

TEST(NpyStrict, AcceptsTheFormsNumPyWrites) {
  EXPECT_TRUE(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }").ok());
  EXPECT_TRUE(parse_dict("{'descr':'<f4','fortran_order':False,'shape':(2,2)}").ok());
  EXPECT_TRUE(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}").ok());
  EXPECT_TRUE(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 10)}", "").ok());
}

TEST(NpyStrict, RepeatedShapeKey) {
  expect_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,), }",
                  "repeats the key 'shape'");
}

TEST(NpyStrict, MissingCommaBetweenEntries) {
  expect_rejected("{'descr': '<f4' 'fortran_order': False, 'shape': (2, 2), }", "missing ','");
}

TEST(NpyStrict, MissingCommaBetweenDims) {
  expect_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2 2), }", "missing ','");
}

TEST(NpyStrict, TextAfterClosingBrace) {
  expect_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), } x",
                  "text after the header's closing '}'");
}

TEST(NpyStrict, LeadingZeroInDim) {
  expect_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (02, 2), }", "leading zero");
}

TEST(NpyStrict, FortranOrderGivenTwice) {
  expect_rejected(
      "{'descr': '<f4', 'fortran_order': True, 'fortran_order': False, 'shape': (2, "
      "2), }",
      "repeats the key 'fortran_order'");
}

TEST(NpyStrict, ParenthesisedIntIsNotATuple) {
  expect_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", "not a tuple");
}

// The product of the non-zero dims must fit before the zero dim makes the total 0 (as in NumPy);
// otherwise the element count overflows on the way.
TEST(NpyStrict, HugeDimsBesideAZeroDim) {
  expect_rejected(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, "
      "4294967296, 0), }",
      "has too many elements", "");
}

TEST(Npy, LongHeaderIsWrittenAsVersion2) {
  const testing::TempDir tmp;
  std::vector<int64_t> dims(25000, 1);  // "1, " x 25000: a header over 64 KiB
  dims[0] = 3;
  Tensor t{Shape(dims), DType::kF32};
  for (int i = 0; i < 3; ++i) t.set(i, 1.25 * i);
  const std::string bytes = npy_encode(t.cview());
  EXPECT_EQ(bytes[6], '\x02');
  EXPECT_EQ((bytes.size() - 12) % 64, 0u);  // data still starts 64-byte aligned
  const std::string path = (tmp.path() / "long.npy").string();
  ASSERT_TRUE(npy_write(path, t.cview()).ok());
  for (Tensor back; const bool from_file : {false, true}) {
    const Status s = from_file ? npy_read(path, DType::kF32, &back)
                               : npy_parse("long.npy", bytes, DType::kF32, &back);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back.shape(), t.shape());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(back.get(i), 1.25 * i);
  }
  Tensor small(Shape{2}, DType::kF32);
  EXPECT_EQ(npy_encode(small.cview())[6], '\x01');  // v1 whenever it fits
}

TEST(Npy, ReadOfMissingFileNamesIt) {
  Tensor t;
  const Status s = npy_read("/nonexistent/dir/x.npy", DType::kF32, &t);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("/nonexistent/dir/x.npy: cannot open"), std::string::npos);
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The last target is a directory: the targets already renamed are put back as they were.
TEST(Npy, WriteAllRestoresEveryTargetWhenTheLastCannotBeReplaced) {
  const testing::TempDir tmp;
  const auto& dir = tmp.path();
  Tensor old_t(Shape{2}, DType::kF32), new_t(Shape{3}, DType::kF32);
  old_t.set(0, 1.0);
  new_t.set(0, 2.0);
  const std::string a = (dir / "a.npy").string(), b = (dir / "b.npy").string();
  const std::string c = (dir / "c.npy").string();
  ASSERT_TRUE(npy_write(a, old_t.cview()).ok());
  std::filesystem::create_directory(c);
  const std::string old_a = file_bytes(a);
  const Status s = npy_write_all({{a, new_t.cview()}, {b, new_t.cview()}, {c, new_t.cview()}});
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("c.npy: cannot replace a directory"), std::string::npos)
      << s.message();
  EXPECT_EQ(file_bytes(a), old_a) << "a.npy replaced although c.npy failed";
  EXPECT_FALSE(std::filesystem::exists(b)) << "b.npy created although c.npy failed";
  EXPECT_TRUE(std::filesystem::is_directory(c));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 2u) << "temporary or backup files left behind";
}

TEST(Npy, WriteAllLeavesNothingWhenOneFileFails) {
  const testing::TempDir tmp;
  const auto& dir = tmp.path();
  Tensor t(Shape{3}, DType::kBF16);
  t.set(0, 1.5);
  const std::string a = (dir / "a.npy").string();
  const std::string bad = (dir / "missing_subdir" / "b.npy").string();
  const Status s = npy_write_all({{a, t.cview()}, {bad, t.cview()}});
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("b.npy"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << "partial output left behind";
  ASSERT_TRUE(npy_write_all({{a, t.cview()}}).ok());
  Tensor back;
  ASSERT_TRUE(npy_read(a, DType::kF32, &back).ok());
  EXPECT_EQ(back.get(0), 1.5);  // bf16 written exactly as <f4
}

}  // namespace
}  // namespace tilenorm
