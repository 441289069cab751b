// Fans the log's single commit listener out to several subscribers (metrics, the event
// stream, ...).
//
// Publish runs on the log's commit thread after each durable batch: it must never wait
// on a subscriber, so every subscriber callback must return at once (set an atomic,
// signal a condition variable) and do its work elsewhere. Subscribe and Unsubscribe may
// be called from any thread; a callback that was unsubscribed is not called after
// Unsubscribe returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace casework::shell {

class CommitBroadcaster {
 public:
  using Listener = std::function<void(int64_t size)>;
  using Token = uint64_t;

  // Calls every subscriber with the new log size. Cost: one mutex acquisition and one
  // call per subscriber.
  void Publish(int64_t size) {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [token, listener] : listeners_) listener(size);
  }

  // Adds a subscriber; returns the token to remove it with.
  Token Subscribe(Listener listener) {
    absl::WriterMutexLock lock(&mu_);
    const Token token = ++next_token_;
    listeners_.emplace_back(token, std::move(listener));
    return token;
  }

  // Removes a subscriber. Once this returns, its callback is not running and will not run.
  void Unsubscribe(Token token) {
    absl::WriterMutexLock lock(&mu_);
    std::erase_if(listeners_, [token](const auto& entry) { return entry.first == token; });
  }

 private:
  absl::Mutex mu_;
  Token next_token_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<Token, Listener>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace casework::shell
