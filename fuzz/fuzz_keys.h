// The signing key of the fuzz corpus. The corpus's checkpoints and exports come from a
// real log (make_corpus.cc) that signs with this fixed seed, so that the targets can
// verify them and mutations get past the signature into the rest of the format. A
// test key, public on purpose: it signs nothing else.
#pragma once

#include <string>

#include "store/checkpoint.h"

namespace casework::fuzz {

// The origin (and key name) of the corpus log: RocksEventLog's default origin.
inline constexpr char kFuzzOrigin[] = "casework/log";

// 32 bytes: 0xC0, 0xC1, ..., 0xDF.
inline std::string FuzzKeySeed() {
  std::string seed(32, '\0');
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<char>(0xC0 + i);
  return seed;
}

inline const store::NoteSigner& FuzzSigner() {
  static const store::NoteSigner* signer =
      new store::NoteSigner(*store::NoteSigner::FromSeed(kFuzzOrigin, FuzzKeySeed()));
  return *signer;
}

inline const store::NoteVerifier& FuzzVerifier() { return FuzzSigner().verifier(); }

}  // namespace casework::fuzz
