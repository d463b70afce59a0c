/* SPDX-License-Identifier: MIT */
/*
 * LeakSanitizer suppressions for Criterion's runner process. Linked into the
 * test suites of OBSPAM_SANITIZE=address builds only.
 *
 * A Criterion test program is two kinds of process: the runner, which only
 * schedules and watches, and the workers it starts (with BXFI_MAP in their
 * environment), which run the tests. With --jobs 2 and tests that set
 * .timeout, the runner of Criterion 2.4.1 leaks a small allocation of its
 * own (calloc from criterion_run_all_tests), which LeakSanitizer reports as
 * the runner exits and which fails the suite.
 *
 * LeakSanitizer matches a suppression against every frame of a leak's stack,
 * and the stacks of real leaks in the library also pass through
 * libcriterion, so the runner's leak cannot be told apart by a pattern.
 * What tells it apart is the process: in the runner, which runs no project
 * code, libcriterion's leaks are suppressed; in the workers, nothing is.
 */
#include <stdlib.h>

__attribute__((visibility("default"), used)) const char *
__lsan_default_suppressions(void) {
  return getenv("BXFI_MAP") == NULL ? "leak:libcriterion.so\n" : "";
}
