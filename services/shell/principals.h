// The principals file: who may act, with which roles, in which jurisdiction.
//
// Format (JSON, documented in docs/operations.md):
//   {"principals": [
//     {"id": "li.na", "display_name": "李娜", "roles": ["lister"],
//      "jurisdiction": "jiangbei", "approval_level": "county"}, ...]}
// Roles by name: lister, reviewer, assister, inspector, approver, auditor, admin.
// approval_level: "county" or "city" (approvers only).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "casework/v1/events.pb.h"
#include "services/workflow/policy.h"
#include "store/event_log.h"

namespace casework::shell {

// An immutable set of principals.
class Principals {
 public:
  // Parses the JSON text; kInvalidArgument naming the entry and field on a mistake.
  static absl::StatusOr<std::shared_ptr<const Principals>> Parse(std::string_view json);
  // Reads and parses a file; kNotFound when it cannot be read.
  static absl::StatusOr<std::shared_ptr<const Principals>> Load(const std::string& path);

  // The principal with this identity, or nullptr.
  [[nodiscard]] const workflow::Principal* Find(std::string_view id) const;
  // A principal whose identity differs from `id` only in ASCII letter case, in the
  // punctuation '.', '-', '_', middle dots and spaces (ideographic, no-break), or in
  // full-width forms of ASCII ("Zhang.Wei",
  // "zhangwei", "ｚｈａｎｇ．ｗｅｉ" for "zhang.wei"), or nullptr (also when `id` is itself an
  // identity). Look-alike letters of other scripts are not caught.
  [[nodiscard]] const workflow::Principal* Resembling(std::string_view id) const;
  [[nodiscard]] size_t size() const { return by_id_.size(); }

  // The set as recorded in the log (PrincipalsRecorded: principals by id, roles in enum
  // order, and the version: the hex of the first 8 bytes of SHA-256 of the deterministic
  // serialization of the principals).
  [[nodiscard]] const casework::v1::PrincipalsRecorded& record() const { return record_; }
  [[nodiscard]] const std::string& version() const { return record_.principals_version(); }
  // A copy whose principals carry version(), so that every event they cause is stamped
  // with it. Serve a stamped set only once RecordPrincipals recorded it.
  [[nodiscard]] std::shared_ptr<const Principals> Stamped() const;
  // This set without every principal that `next` removes or changes (roles, jurisdiction,
  // approval level), under this set's record and version: what may go on acting when
  // `next` cannot be recorded. Each principal kept is the same in both sets, so its events
  // stay stamped with a version the log holds; `next`'s new identities are not added.
  [[nodiscard]] std::shared_ptr<const Principals> WithoutChangesIn(const Principals& next) const;
  // True for an identity that `next` (of WithoutChangesIn) names but this set holds back:
  // new or changed there, waiting for its record.
  [[nodiscard]] bool Withheld(std::string_view id) const {
    return withheld_.contains(std::string(id));
  }

 private:
  std::unordered_map<std::string, workflow::Principal> by_id_;
  casework::v1::PrincipalsRecorded record_;
  std::unordered_set<std::string> withheld_;
};

// "config/principals": where the server records its principals.
inline constexpr char kPrincipalsStream[] = "config/principals";
// The actor of the server's own events.
inline constexpr char kServerActor[] = "caseworkd";

// The largest record of a principals set (Parse refuses a file whose record is larger),
// and the most of it one event holds (RecordPrincipals splits a larger record into parts).
inline constexpr size_t kPrincipalsRecordBytesMax = 16u << 20;
inline constexpr size_t kPrincipalsPartBytesMax = 256u << 10;

// Records `set` on kPrincipalsStream (PrincipalsRecorded, actor kServerActor, request id
// "principals-{version}", `exclusive`) unless that version is recorded already: one event,
// or parts of at most kPrincipalsPartBytesMax of principals each in one append. A version
// recorded before that is not the stream's last record (a return to an earlier file) is
// recorded as in force again: one `reinstated` event, request id
// "principals-{version}-again-{stream version}". Call it, and see it succeed, before
// authorising anyone under the set, while no append authorised under another set is under
// way (PrincipalsHolder::append_gate). Store errors as such.
[[nodiscard]] absl::Status RecordPrincipals(store::EventLog* log, const Principals& set,
                                            int64_t now_micros);

// Whether `a` and `b` (one identity in two principals sets) hold the same roles (as a set:
// order and repeats aside) and the same jurisdiction: a caller standing as authenticated
// (CallerStanding), an actor standing in the set in force (deep verification).
[[nodiscard]] bool StandsAlike(const workflow::Principal& a, const workflow::Principal& b);

// Whether `p` may record a principals set in its name: an administrator of the whole city
// (the file grants roles everywhere). AdminService.ReloadPrincipals, the reloader and deep
// verification hold a person to this.
[[nodiscard]] bool MayRecordPrincipals(const workflow::Principal& p);

// Where a principals set is recorded, and by whom.
struct PrincipalsRecord {
  // False when the version was recorded before (by a start, a reload or another call).
  bool recorded_now = false;
  // The position of the record's first event.
  int64_t position = 0;
  // Its actor: kServerActor (a start or SIGHUP) or the administrator who reloaded.
  std::string recorded_by;
  // Where a set recorded before was recorded as in force again (PrincipalsRecorded
  // `reinstated`): a return to it from another set; -1 when it was in force already.
  int64_t reinstated_at = -1;
};

// RecordPrincipals naming `by` as the actor, its events stamped with the version `by`
// acted under; the server (kServerActor) when null. Says where the version is recorded.
[[nodiscard]] absl::StatusOr<PrincipalsRecord> RecordPrincipalsBy(store::EventLog* log,
                                                                  const Principals& set,
                                                                  int64_t now_micros,
                                                                  const workflow::Principal* by);

// The current principals, swapped atomically on reload (SIGHUP) without blocking readers
// for longer than a pointer copy.
class PrincipalsHolder {
 public:
  explicit PrincipalsHolder(std::shared_ptr<const Principals> initial)
      : current_(std::move(initial)) {}
  [[nodiscard]] std::shared_ptr<const Principals> Get() const {
    absl::MutexLock lock(&mu_);
    return current_;
  }
  void Set(std::shared_ptr<const Principals> next) {
    absl::MutexLock lock(&mu_);
    current_ = std::move(next);
  }

  // Orders each set's record before what the next set authorises. Held shared by an
  // append in a principal's name from its last check of the caller against the set in
  // force until the append is queued (EventLog::AppendAsync returned, or a blocking Append
  // answered), and exclusively by a reload across its record's append and the switch
  // (PrincipalsReloader). So every event the log holds after a set's record was checked
  // against that set (or a later one), which deep verification holds it to
  // (PrincipalsRecorded.exclusive). A reload holding it takes no lock but the log's.
  [[nodiscard]] absl::Mutex* append_gate() const { return &append_gate_; }
  // How many appends came to the gate (AppendGateHold), also those waiting at it: lets a
  // test that holds the gate know that the calls it started reached it.
  [[nodiscard]] int64_t append_gate_arrivals() const {
    return append_gate_arrivals_.load(std::memory_order_acquire);
  }

 private:
  friend class AppendGateHold;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Principals> current_;
  mutable absl::Mutex append_gate_;
  mutable std::atomic<int64_t> append_gate_arrivals_{0};
};

// The append gate of `holder` (PrincipalsHolder::append_gate) held shared for this
// object's life; nothing when `holder` is null.
class AppendGateHold {
 public:
  explicit AppendGateHold(const PrincipalsHolder* holder)
      : gate_(holder != nullptr ? holder->append_gate() : nullptr) {
    if (holder == nullptr) return;
    holder->append_gate_arrivals_.fetch_add(1, std::memory_order_acq_rel);
    gate_->ReaderLock();
  }
  ~AppendGateHold() {
    if (gate_ != nullptr) gate_->ReaderUnlock();
  }
  AppendGateHold(const AppendGateHold&) = delete;
  AppendGateHold& operator=(const AppendGateHold&) = delete;

 private:
  absl::Mutex* const gate_;
};

// Reads the principals file again, records it (naming who asked) and serves it: on SIGHUP
// (the server) and on AdminService.ReloadPrincipals (an administrator). One at a time.
class PrincipalsReloader {
 public:
  struct Options {
    // The principals file the server was started with.
    std::string path;
    // Where the set is recorded before anyone acts under it; null: not recorded
    // (caseworkd --record-principals=false), served as loaded.
    store::EventLog* log = nullptr;
    std::function<int64_t()> clock;
  };
  struct Result {
    // The set now served.
    std::shared_ptr<const Principals> set;
    // Where it is recorded (unset when not recording).
    std::optional<PrincipalsRecord> record;
  };

  PrincipalsReloader(Options options, PrincipalsHolder* holder)
      : options_(std::move(options)), holder_(holder) {}

  // Loads, records (naming `by`, as the set in use has them now; the server when null) and
  // serves the file. A file that does not load (FileNotLoaded), or a caller no longer an
  // administrator of the whole city (CallerChanged): the set in use stays. A record that cannot be
  // appended: the store's error, and the reload fails closed (Principals::WithoutChangesIn:
  // whom the new file removes or changes stops acting; the message says how many).
  [[nodiscard]] absl::StatusOr<Result> Reload(const workflow::Principal* by);
  // Whether a Reload error says the file did not load (nothing changed).
  [[nodiscard]] static bool FileNotLoaded(const absl::Status& status);
  // Whether a Reload error says `by` is no longer an administrator of the whole city in
  // the set in use (a reload changed them while this one waited; nothing changed).
  [[nodiscard]] static bool CallerChanged(const absl::Status& status);

 private:
  const Options options_;
  PrincipalsHolder* const holder_;
  absl::Mutex mu_;
};

}  // namespace casework::shell
