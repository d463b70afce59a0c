/* SPDX-License-Identifier: MIT */
/* Running the notify command: its input, its exit status and output in
   the message, the timeout that kills its whole process group. */
#include <signal.h>

#include "common_test.h"
#include "util.h"

static char why[512];

Test(command, input_reaches_the_command) {
  char cmd[700];

  make_test_dir();
  snprintf(cmd, sizeof(cmd), "cat > '%s'", path_in("out"));
  cr_assert_eq(obspamd__run_command(cmd, "To: a@b.example\n\nhello\n", 24, 5000,
                                    why, sizeof(why)),
               0, "%s", why);
  cr_assert_str_eq(why, "exited with status 0");
  {
    char *got = read_file(path_in("out"));
    cr_assert_str_eq(got, "To: a@b.example\n\nhello\n");
    free(got);
  }
}

Test(command, failure_with_its_first_line_of_output) {
  cr_assert_eq(obspamd__run_command("echo; echo 'sendmail: fatal: no "
                                    "route' >&2; echo second; exit 75",
                                    "x", 1, 5000, why, sizeof(why)),
               -1);
  cr_assert_str_eq(why, "exited with status 75: sendmail: fatal: no route");
  cr_assert_eq(obspamd__run_command("exit 1", "", 0, 5000, why, sizeof(why)),
               -1);
  cr_assert_str_eq(why, "exited with status 1");
  cr_assert_eq(
      obspamd__run_command("kill -9 $$", "", 0, 5000, why, sizeof(why)), -1);
  cr_assert_str_eq(why, "killed by signal 9");
  cr_assert_eq(obspamd__run_command("/nonexistent/sendmail -t", "", 0, 5000,
                                    why, sizeof(why)),
               -1);
  cr_assert_str_eq(why, "exited with status 127: sh: 1: /nonexistent/sendmail:"
                        " not found");
}

Test(command, a_command_that_does_not_read) {
  /* 1 MiB to a command that exits at once: no SIGPIPE kills the caller,
     and the exit status decides. */
  size_t len = 1 << 20;
  char *big = malloc(len);

  cr_assert_not_null(big);
  memset(big, 'x', len);
  cr_assert_eq(obspamd__run_command("exit 0", big, len, 5000, why, sizeof(why)),
               0, "%s", why);
  cr_assert_eq(obspamd__run_command("exit 3", big, len, 5000, why, sizeof(why)),
               -1);
  cr_assert_str_eq(why, "exited with status 3");
  free(big);
}

Test(command, timeout_kills_the_process_group) {
  char cmd[700], *pidtext;
  int64_t t0 = obspamd_now_ms(), took;
  pid_t child;

  make_test_dir();
  /* The shell starts a grandchild and waits: both must die. */
  snprintf(cmd, sizeof(cmd), "echo started; sleep 30 & echo $! > '%s'; wait",
           path_in("pid"));
  cr_assert_eq(obspamd__run_command(cmd, "", 0, 500, why, sizeof(why)), -1);
  took = obspamd_now_ms() - t0;
  cr_assert_str_eq(why, "timed out after 1 s: killed: started");
  cr_assert_lt(took, 3000, "took %lld ms", (long long)took);
  pidtext = read_file(path_in("pid"));
  cr_assert_not_null(pidtext);
  child = (pid_t)atoi(pidtext);
  free(pidtext);
  cr_assert_gt(child, 0);
  /* Killed; reaped by init (or a subreaper) soon after. */
  WAIT_FOR(kill(child, 0) != 0, 3000);
  if (kill(child, 0) == 0) {
    char stat_path[64], *st;
    snprintf(stat_path, sizeof(stat_path), "/proc/%d/stat", (int)child);
    st = read_file(stat_path);
    cr_assert(st != NULL && strstr(st, ") Z ") != NULL,
              "the grandchild %d still runs: %s", (int)child,
              st ? st : "(no stat)");
    free(st);
  }
}

Test(command, a_background_child_does_not_hold_it_up) {
  int64_t t0 = obspamd_now_ms(), took;

  /* sendmail-like programs may leave a child behind with our pipe open:
     the exit of the command is what counts. */
  cr_assert_eq(
      obspamd__run_command("sleep 3 & exit 0", "", 0, 10000, why, sizeof(why)),
      0, "%s", why);
  took = obspamd_now_ms() - t0;
  cr_assert_lt(took, 2000, "took %lld ms", (long long)took);
}

Test(command, signals_are_default_in_the_command) {
  sigset_t all;

  /* The daemon's threads block every signal and a daemon may ignore
     SIGPIPE: the command must not inherit either. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* glibc's posix_spawn leaves its two internal signals (32 and 33)
     ignored until the new program's libc sets them up: those bits may be
     set. */
  cr_assert_eq(
      obspamd__run_command("b=$(awk '/^SigBlk/ {print $2}' /proc/self/status); "
                           "i=$(awk '/^SigIgn/ {print $2}' /proc/self/status); "
                           "echo \"blocked $b ignored $i\"; "
                           "[ \"$b\" = 0000000000000000 ] && "
                           "{ [ \"$i\" = 0000000000000000 ] || "
                           "[ \"$i\" = 0000000180000000 ]; }",
                           "", 0, 5000, why, sizeof(why)),
      0, "%s", why);
}
