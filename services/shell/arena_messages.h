// Request and response of a unary callback method on one protobuf arena per call.
//
// gRPC's default holder constructs the two messages in its call arena but leaves every
// field they own (strings, nested messages, repeated fields) to malloc, and most of them
// were freed on another thread (the log's, which answers) than the one that made them.
// Here the fields come from one arena, freed as a few blocks when gRPC releases the
// call; with the command wrapping the request and the case decided in the answer, a
// command made about 80 fewer heap allocations (docs/benchmarks.md). String contents
// longer than 15 bytes still come from the heap (protobuf 3.21).
#pragma once

#include <memory>

#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace casework::shell {

// Arena blocks: the first holds a typical command, its case and its answer.
inline google::protobuf::ArenaOptions CallArenaOptions() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 8u << 10;
  options.max_block_size = 64u << 10;
  return options;
}

template <typename Request, typename Response>
class ArenaMessages final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(CallArenaOptions()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    google::protobuf::Arena arena_;
  };
};

}  // namespace casework::shell
