// A RocksDB FileSystem that simulates power loss, for tests (rocks_event_log_power_loss_test).
//
// Fault model. The disk keeps only what was made durable before the power cut:
//  - File contents. Bytes written to a file become durable when Sync or Fsync on that file
//    returns OK; Flush, RangeSync and Close make nothing durable. Every file keeps its
//    synced prefix. With LossOptions::tear, a file also keeps a prefix of its unsynced
//    tail: none of it, all of it (a quarter of the files each) or a random prefix (half):
//    a partially persisted last write. Bytes are never reordered or garbled; only the
//    end of a file is lost.
//  - Directory entries. A creation, deletion, rename or hard link in a directory becomes
//    durable when that directory is fsynced (FSDirectory::Fsync or FsyncWithDirOptions);
//    the fsync makes the directory's whole current name -> file map durable. After the
//    cut a directory holds its map as of its last fsync; with
//    LossOptions::directory_prefix it also keeps a random prefix (in issue order) of the
//    operations since, as a journaling file system may. A rename within one directory is
//    one atomic operation; across directories it is a removal and a creation, each in
//    its own directory. A deleted or renamed-over file whose removal is not durable
//    comes back with its synced contents. Reopening an existing name for writing
//    (O_TRUNC) truncates the file at once (its old bytes are not brought back).
//  - Reused files (ReuseWritableFile: a rename, then writes over the old bytes from the
//    start, as WAL files in zero-filled space are written, store/zero_filled_wal.h). Only
//    a file of zeros can be reused (anything else is refused). After the cut it keeps
//    its synced prefix, perhaps a torn prefix of its unsynced writes, and zeros past
//    them to its old size. A disk writes sector by sector, so such a torn prefix ends at
//    a multiple of 512 bytes; and over blocks it already has it keeps no order: in some
//    of the tears (a quarter; with always_tear, when `scatter`) the unsynced bytes are
//    cut into units of a sector, a page or a 32 KiB block, each kept or lost at random,
//    with zeros in place of the lost.
//  - Directories themselves (CreateDir) are not modeled: they are assumed durable.
//  - Files that RocksDB writes without this FileSystem (the info LOG, written by the
//    POSIX logger) are adopted when created (NewLogger) with nothing synced; the lock
//    file (LockFile) is not modeled and disappears unless it existed at construction.
//  - What the model does not cover: a device that reorders or corrupts synced data, or
//    lies about a flush; bit rot. Files outside `root` pass through untouched.
//
// Use: construct with the RocksDB directory (which must exist; everything already in it
// counts as durable, so close the database cleanly before), wrap it in an Env with
// NewPowerLossEnv (or rocksdb::NewCompositeEnv) and hand that to DBOptions::env. Call Cut() (or arm
// CutAtOp) to cut the power: from then on every mutating call fails with an IOError, so nothing
// more becomes durable and no Sync can succeed. Destroy the database, then call
// ApplyPowerLoss to rewrite `root` to what the disk would hold. One instance per cut.
//
// Syncs are recorded, not performed: the model, not the kernel, decides what is durable,
// and the page cache holds the bytes in the meantime. Every file is also hard-linked
// into `root + ".power-loss"` (created and removed by this class) so that its contents
// can be brought back after a deletion or rename that was not durable.
// Thread-safe.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace casework::store::testing {

class PowerLossFs final : public rocksdb::FileSystemWrapper {
 public:
  // Kinds of mutating operation, as a bit set (CutAtOp, OpCount, FirstRefused).
  enum OpKind : uint32_t {
    kWalAppend = 1u << 0,  // *.log: the write-ahead log
    kWalSync = 1u << 1,
    kTableAppend = 1u << 2,  // *.sst: flush and compaction output
    kTableSync = 1u << 3,
    kManifestAppend = 1u << 4,  // MANIFEST-*
    kManifestSync = 1u << 5,
    kOtherAppend = 1u << 6,  // CURRENT, OPTIONS, IDENTITY, temporary files, ...
    kOtherSync = 1u << 7,
    kCreate = 1u << 8,  // a new or reopened file, a hard link, the info log
    kRename = 1u << 9,
    kDelete = 1u << 10,
    kDirSync = 1u << 11,
    kTruncate = 1u << 12,
    kAnyOp = (1u << 13) - 1,
  };
  static constexpr int kOpKinds = 13;
  // A short name of one kind ("wal-append", ...).
  static const char* KindName(uint32_t kind);

  struct LossOptions {
    bool tear = false;              // keep a random prefix of each unsynced tail
    bool directory_prefix = false;  // keep a random prefix of each directory's unsynced ops
    // With tear: tear every unsynced tail of more than 1 KiB inside, never losing or
    // keeping it whole (a test that needs a torn write).
    bool always_tear = false;
    // With always_tear, over zeros: lose sectors anywhere rather than keep a prefix.
    bool scatter = false;
  };

  // What ApplyPowerLoss did.
  struct LossReport {
    int files_kept = 0;           // files in `root` after the loss
    int files_truncated = 0;      // files that lost bytes
    int64_t bytes_dropped = 0;    // bytes lost, over all files
    int torn_files = 0;           // files that kept part, but not all, of their unsynced tail
    int torn_wal_files = 0;       // of which write-ahead logs
    int torn_in_zeros = 0;        // of which torn over zeros (reused files)
    int scattered_in_zeros = 0;   // of which lost sectors anywhere (not a prefix)
    int unsynced_tails_kept = 0;  // files that kept all of their unsynced tail
    int dir_ops_reverted = 0;     // creations, deletions and renames lost
    int dir_ops_kept = 0;         // unsynced directory operations kept (directory_prefix)
  };

  // `root`: the directory to model (the RocksDB directory). It must exist.
  explicit PowerLossFs(std::string root);
  ~PowerLossFs() override;
  PowerLossFs(const PowerLossFs&) = delete;
  PowerLossFs& operator=(const PowerLossFs&) = delete;

  static const char* kClassName() { return "CaseworkPowerLossFs"; }
  const char* Name() const override { return kClassName(); }

  // Cuts the power now.
  void Cut();
  // Cuts the power at the `nth` (1-based) operation of `kinds` counted from now; that
  // operation already fails.
  void CutAtOp(uint32_t kinds, uint64_t nth);
  bool IsCut() const;
  // Operations of `kinds` that ran (not refused) so far.
  uint64_t OpCount(uint32_t kinds) const;
  // Bytes appended to files of the append `kinds` (kWalAppend, ...) so far.
  uint64_t BytesAppended(uint32_t kinds) const;
  // Bytes written to and synced of the file `path` names now; false when it names none.
  bool FileState(const std::string& path, uint64_t* written, uint64_t* synced) const;
  // Reuses refused because the file held more than zeros (a defect of the caller).
  uint64_t ReusesRefused() const;
  // The kind of the first operation refused because the power was off (0: none yet;
  // KindName(0) is "idle").
  uint32_t FirstRefused() const;

  // Rewrites `root` to what survives the cut (see the model above). Cuts the power first
  // if that was not done. Call only when no file of the database is open any more.
  // Returns an error (and leaves `root` in an unspecified state) on an I/O error.
  rocksdb::IOStatus ApplyPowerLoss(std::mt19937_64& rng, const LossOptions& options,
                                   LossReport* report);

  // FileSystem.
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewLogger(const std::string& fname, const rocksdb::IOOptions& options,
                              std::shared_ptr<rocksdb::Logger>* result,
                              rocksdb::IODebugContext* dbg) override;

 private:
  class File;
  class Directory;

  struct Inode {
    uint32_t append_kind = kOtherAppend;
    uint32_t sync_kind = kOtherSync;
    bool wal = false;
    bool unseen_writes = false;  // written outside this FileSystem (the info log)
    uint64_t written = 0;        // bytes written through this FileSystem
    uint64_t synced = 0;         // of which durable
    // Reused (ReuseWritableFile): the durable size of its zeros, which its writes
    // overwrite from the start; after a cut the file holds them past what it kept.
    uint64_t zeros = 0;
  };
  struct DirOp {
    enum class Type { kLink, kUnlink, kRename } type;
    std::string name;  // the new name (kLink, kRename) or the removed one (kUnlink)
    std::string from;  // kRename: the old name
    uint64_t inode = 0;
  };
  struct Dir {
    std::map<std::string, uint64_t> current;  // name -> inode, as it is now
    std::map<std::string, uint64_t> durable;  // as of the last fsync
    std::vector<DirOp> pending;               // since the last fsync, in order
  };

  // Requires mu_. Counts one operation of `kind`, firing an armed cut. True when the
  // power is off (the operation must fail; it is then not counted).
  bool PowerOffLocked(uint32_t kind);
  static rocksdb::IOStatus PowerOffError();
  bool Tracked(const std::string& path) const;
  static std::pair<std::string, std::string> Split(const std::string& path);
  std::string ShadowOf(uint64_t inode) const;
  // Requires mu_. Binds `path` to a new inode (or truncates the inode it names) and
  // records the creation in its directory.
  rocksdb::IOStatus CreateLocked(const std::string& path, bool unseen_writes, uint64_t* inode);
  // Requires mu_. Records that `src` was renamed to `target_name` (inode `inode`).
  void RenamedLocked(const std::string& src, const std::string& target_name, uint64_t inode);
  // Requires mu_. The inode `path` names, adopting an unknown file as just created.
  rocksdb::IOStatus InodeOfLocked(const std::string& path, uint64_t* inode);

  // For File and Directory.
  rocksdb::IOStatus BeforeAppend(uint64_t inode);
  void AfterAppend(uint64_t inode, uint64_t bytes, const uint64_t* offset);
  rocksdb::IOStatus SyncFile(uint64_t inode);
  rocksdb::IOStatus BeforeTruncate();
  void AfterTruncate(uint64_t inode, uint64_t size);
  rocksdb::IOStatus CheckPower();
  rocksdb::IOStatus SyncDir(const std::string& dir);

  const std::string root_;    // normalized, no trailing '/'
  const std::string shadow_;  // root_ + ".power-loss"

  mutable std::mutex mu_;
  bool cut_ = false;
  bool applied_ = false;
  uint32_t first_refused_ = 0;
  uint32_t trigger_kinds_ = 0;
  uint64_t trigger_left_ = 0;
  std::array<uint64_t, kOpKinds> counts_{};
  std::array<uint64_t, kOpKinds> bytes_{};
  uint64_t next_inode_ = 1;
  uint64_t reuses_refused_ = 0;
  std::map<uint64_t, Inode> inodes_;
  std::map<std::string, Dir> dirs_;  // normalized directory path -> entries
};

// An Env whose files go through `fs` (rocksdb::NewCompositeEnv) and whose clock skips
// sleeps once the power is off: RocksDB pauses 1 s after a failed background flush or
// compaction, and a process without power has nothing to wait for.
std::unique_ptr<rocksdb::Env> NewPowerLossEnv(const std::shared_ptr<PowerLossFs>& fs);

}  // namespace casework::store::testing
