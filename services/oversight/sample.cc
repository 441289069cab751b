#include "services/oversight/sample.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace casework::oversight {
namespace {

using DigestContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

void Field(EVP_MD_CTX* ctx, std::string_view bytes) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  const unsigned char length[4] = {
      static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
      static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
  EVP_DigestUpdate(ctx, length, sizeof(length));
  EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
}

// The stream of 64-bit words of the draw.
class Words {
 public:
  explicit Words(const Seed& seed) : seed_(seed) {}

  uint64_t Next() {
    if (used_ == 4) Refill();
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w = (w << 8) | block_[used_ * 8 + i];
    ++used_;
    return w;
  }

  uint64_t Uniform(uint64_t m) {
    // 2^64 mod m, computed without 128-bit arithmetic: (2^64 - m) mod m.
    const uint64_t excess = (0 - m) % m;
    while (true) {
      const uint64_t w = Next();
      if (excess == 0 || w < 0 - excess) return w % m;
    }
  }

 private:
  void Refill() {
    unsigned char input[40];
    std::memcpy(input, seed_.data(), seed_.size());
    for (int i = 0; i < 8; ++i) input[32 + i] = static_cast<unsigned char>(blocks_ >> (56 - 8 * i));
    ++blocks_;
    EVP_Digest(input, sizeof(input), block_.data(), nullptr, EVP_sha256(), nullptr);
    used_ = 0;
  }

  const Seed seed_;
  std::array<unsigned char, 32> block_{};
  int used_ = 4;
  uint64_t blocks_ = 0;
};

}  // namespace

Seed SampleSeed(std::string_view checkpoint_note, std::string_view scope, int sample_size,
                std::string_view request_id, int64_t draw_micros) {
  DigestContext ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx.get(), kSampleSeedContext, sizeof(kSampleSeedContext) - 1);
  Field(ctx.get(), checkpoint_note);
  Field(ctx.get(), scope);
  Field(ctx.get(), std::to_string(sample_size));
  Field(ctx.get(), request_id);
  Field(ctx.get(), std::to_string(draw_micros));
  Seed seed;
  EVP_DigestFinal_ex(ctx.get(), seed.data(), nullptr);
  return seed;
}

std::vector<std::string> DrawSample(const Seed& seed, std::vector<std::string> population, int k) {
  const size_t n = population.size();
  const size_t take = k <= 0 ? 0 : std::min(n, static_cast<size_t>(k));
  Words words(seed);
  for (size_t i = 0; i < take; ++i) {
    const size_t j = i + static_cast<size_t>(words.Uniform(n - i));
    std::swap(population[i], population[j]);
  }
  population.resize(take);
  return population;
}

std::string SampleStream(std::string_view request_id) {
  unsigned char digest[32];
  EVP_Digest(request_id.data(), request_id.size(), digest, nullptr, EVP_sha256(), nullptr);
  return absl::StrCat("samples/",
                      absl::BytesToHexString(std::string(reinterpret_cast<char*>(digest), 8)));
}

}  // namespace casework::oversight
