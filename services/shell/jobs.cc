#include "services/shell/jobs.h"

#include <malloc.h>

namespace casework::shell {

// glibc's malloc_trim(0): a fold over the whole log frees a few hundred MiB in its
// thread's malloc arena, which the next job, on another thread and arena, would not reuse.
// Not under AddressSanitizer: its allocator replaces glibc's, whose arenas are then first
// set up by malloc_trim itself, and glibc marks them set up before it fills them in, so a
// second thread trimming at that moment walks empty bins (a crash in mtrim, seen in the
// test build with two jobs ending at once). Without the sanitizer the first malloc at
// start-up sets them up.
void ReturnFreedMemory() {
#if !defined(__SANITIZE_ADDRESS__)  // as the project's other sanitizer checks
  malloc_trim(0);
#endif
}

}  // namespace casework::shell
