#include "services/shell/fingerprint.h"

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "store/hasher.h"

namespace casework::shell {
namespace {

// Requests up to this size are serialized into a buffer of the calling thread, reused
// from call to call; larger ones into a buffer of their own.
constexpr size_t kReusedBufferBytes = 64u << 10;

}  // namespace

std::string RequestFingerprint(const google::protobuf::Message& request) {
  // Sized once, then written in one pass: the same bytes as serializing into a growing
  // string, without the string's reallocations.
  const size_t size = request.ByteSizeLong();
  thread_local std::string reused;
  std::string own;
  std::string& bytes = size <= kReusedBufferBytes ? reused : own;
  bytes.resize(size);
  {
    google::protobuf::io::ArrayOutputStream stream(bytes.data(), static_cast<int>(size));
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeWithCachedSizes(&coded);
  }
  return std::string(store::rfc9162::AsBytes(store::Sha256(bytes)));
}

}  // namespace casework::shell
