/* SPDX-License-Identifier: MIT */
/* Where log lines go (--log) and what they look like: syslog datagrams
   with facility mail and the line's priority, sent to a socket of the
   test's own (obspamd__syslog_path) rather than the system's /dev/log;
   journal lines with their <N> prefix; the choice by JOURNAL_STREAM. And
   the sockets systemd hands over, and the peer check of unix: listeners,
   which logs once per episode. */
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "access.h"
#include "common_test.h"
#include "log.h"

/* A datagram socket bound in the test directory, standing for /dev/log. */
static int syslog_server(void) {
  struct sockaddr_un sun;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  cr_assert_geq(fd, 0);
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path_in("dev-log"));
  cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "bind: %s",
               strerror(errno));
  obspamd__syslog_path = path_in("dev-log");
  return fd;
}

/* The next datagram, NUL-terminated, or "" after a second without one. */
static const char *next_datagram(int fd) {
  static char buf[4096];
  struct timeval tv = {1, 0};
  ssize_t n;

  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  n = recv(fd, buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* "<PRI>Mmm dd hh:mm:ss " as glibc's syslog(3) writes it, for now. */
static void syslog_head(int pri, time_t now, char *buf, size_t size) {
  char stamp[32];
  struct tm tm;

  localtime_r(&now, &tm);
  strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
  snprintf(buf, size, "<%d>%s ", pri, stamp);
}

Test(log, syslog_facility_mail_and_priorities) {
  char want[512], head[64];
  const char *got;
  time_t before;
  int fd;

  make_test_dir();
  fd = syslog_server();
  obspamd_log_open("obspam-policyd", OBSPAMD_LOG_SYSLOG);
  struct {
    int priority;
    int pri; /* LOG_MAIL (2 << 3 = 16) + the level */
    const char *text;
  } cases[] = {
      {LOG_ERR, 19, "error: reload failed: x.conf:3: unknown plan 'Basik'"},
      {LOG_WARNING, 20, "warning: peer refused uid=1001"},
      {LOG_NOTICE, 21, "refuse kind=mailbox object=info@example.com"},
      {LOG_INFO, 22, "ready: listening on unix:/x"},
      {LOG_CRIT, 18, "fatal: out of memory"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *msg = strchr(cases[i].text, ' ') + 1;
    int prefixed = strncmp(cases[i].text, "refuse", 6) != 0 &&
                   strncmp(cases[i].text, "ready", 5) != 0;

    before = time(NULL);
    obspamd_log(cases[i].priority, "%s", prefixed ? msg : cases[i].text);
    got = next_datagram(fd);
    /* The second may have turned between the line and the check. */
    syslog_head(cases[i].pri, before, head, sizeof(head));
    if (strncmp(got, head, strlen(head)) != 0)
      syslog_head(cases[i].pri, before + 1, head, sizeof(head));
    snprintf(want, sizeof(want), "%sobspam-policyd[%ld]: %s", head,
             (long)getpid(), cases[i].text);
    cr_assert_str_eq(got, want);
  }
  /* No newline in a datagram, and a control character stays '?'. */
  obspamd_log(LOG_INFO, "two\nlines");
  got = next_datagram(fd);
  cr_assert(strstr(got, "]: two?lines") != NULL && got[strlen(got) - 1] == 's',
            "%s", got);
  /* Debug lines only when verbose. */
  obspamd_log(LOG_DEBUG, "hidden");
  obspamd_log_verbose(1);
  obspamd_log(LOG_DEBUG, "shown");
  got = next_datagram(fd);
  cr_assert(strstr(got, "]: debug: shown") != NULL && got[0] == '<' &&
                strncmp(got, "<23>", 4) == 0,
            "%s", got);
  close(fd);
}

Test(log, syslog_comes_back_after_a_restart_and_echoes) {
  const char *got;
  int fd;

  log_in_test_dir();
  fd = syslog_server();
  obspamd_log_open("obspam-milter", OBSPAMD_LOG_SYSLOG);
  obspamd_log(LOG_INFO, "first");
  cr_assert(strstr(next_datagram(fd), "]: first") != NULL);
  /* The syslog daemon restarts: a new socket at the same path. */
  close(fd);
  unlink(path_in("dev-log"));
  fd = syslog_server();
  obspamd_log(LOG_INFO, "second");
  got = next_datagram(fd);
  cr_assert(strstr(got, "obspam-milter[") != NULL &&
                strstr(got, "]: second") != NULL,
            "%s", got);
  /* Echo: a copy on stderr too, in its own form, until it is turned off. */
  obspamd_log_echo(1);
  obspamd_log(LOG_WARNING, "both");
  obspamd_log_echo(0);
  obspamd_log(LOG_WARNING, "syslog only");
  cr_assert(strstr(next_datagram(fd), "]: warning: both") != NULL);
  cr_assert(strstr(next_datagram(fd), "]: warning: syslog only") != NULL);
  cr_assert(logged_line("warning: both"));
  cr_assert(!logged_text("syslog only"));
  close(fd);
}

Test(log, journal_lines) {
  char *log;

  log_in_test_dir();
  obspamd_log_open("obspam-policyd", OBSPAMD_LOG_JOURNAL);
  obspamd_log(LOG_ERR, "cannot start: %s", "x");
  obspamd_log(LOG_WARNING, "listening on inet:127.0.0.1:10040 over TCP");
  obspamd_log(LOG_NOTICE, "refuse kind=mailbox");
  obspamd_log(LOG_INFO, "ready\r\nforged");
  log = read_file(log_path);
  cr_assert_str_eq(log, "<3>error: cannot start: x\n"
                        "<4>warning: listening on inet:127.0.0.1:10040 over "
                        "TCP\n"
                        "<5>refuse kind=mailbox\n"
                        "<6>ready??forged\n");
  free(log);
}

Test(log, format_of_each_mode) {
  char line[64];
  time_t t = 1714566896; /* 2024-05-01T12:34:56Z */
  size_t n;

  n = obspamd__log_format(OBSPAMD_LOG_STDERR, "d", 7, t, LOG_WARNING, "m", line,
                          sizeof(line));
  cr_assert_str_eq(line, "2024-05-01T12:34:56Z d[7]: warning: m\n");
  cr_assert_eq(n, strlen(line));
  n = obspamd__log_format(OBSPAMD_LOG_JOURNAL, "d", 7, t, LOG_INFO, "m", line,
                          sizeof(line));
  cr_assert_str_eq(line, "<6>m\n");
  cr_assert_eq(n, 5);
  /* A line too long is cut, and still ends with its newline. */
  n = obspamd__log_format(OBSPAMD_LOG_JOURNAL, "d", 7, t, LOG_INFO,
                          "0123456789", line, 8);
  cr_assert_str_eq(line, "<6>012\n");
  cr_assert_eq(n, 7);
}

Test(log, mode_from_the_environment) {
  struct stat st;
  char js[64];

  log_in_test_dir();
  cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
  unsetenv("JOURNAL_STREAM");
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 1), OBSPAMD_LOG_STDERR);
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 0), OBSPAMD_LOG_SYSLOG);
  snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
  setenv("JOURNAL_STREAM", js, 1);
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 1), OBSPAMD_LOG_JOURNAL);
  /* Detached, stderr becomes /dev/null: syslog. */
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 0), OBSPAMD_LOG_SYSLOG);
  /* Asked for by hand: as asked. */
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_STDERR, 0), OBSPAMD_LOG_STDERR);
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_SYSLOG, 1), OBSPAMD_LOG_SYSLOG);
  /* Another stream (a redirected child), or garbage. */
  snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino + 1);
  setenv("JOURNAL_STREAM", js, 1);
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 1), OBSPAMD_LOG_STDERR);
  setenv("JOURNAL_STREAM", "journal", 1);
  cr_assert_eq(obspamd_log_mode(OBSPAMD_LOG_AUTO, 0), OBSPAMD_LOG_SYSLOG);
  unsetenv("JOURNAL_STREAM");
}

/* ---- sockets from systemd ------------------------------------------------ */

Test(inherited, sockets_for_this_process_only) {
  int fds[4], sv[2], saved, other, mine, flags, fdflags, none;
  char pid[32], other_env[64], left[3][64];

  /* Descriptor 3 is Criterion's: it is lent to the test and given back
     before any assertion. */
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  saved = dup(3);
  cr_assert_geq(saved, 0);
  dup2(sv[0], 3);
  /* Meant for another process (a parent's, inherited): not taken, and
     left as they are. */
  setenv("LISTEN_PID", "1", 1);
  setenv("LISTEN_FDS", "1", 1);
  other = obspamd_inherited_sockets(fds, 4);
  snprintf(other_env, sizeof(other_env), "%s", getenv("LISTEN_FDS") ?: "-");
  /* For this process: descriptor 3, non-blocking and close-on-exec, and
     the variables are gone for the programs it runs. */
  snprintf(pid, sizeof(pid), "%ld", (long)getpid());
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDNAMES", "obspam-policyd.socket", 1);
  fds[0] = -1;
  mine = obspamd_inherited_sockets(fds, 4);
  flags = fcntl(3, F_GETFL);
  fdflags = fcntl(3, F_GETFD);
  snprintf(left[0], sizeof(left[0]), "%s", getenv("LISTEN_PID") ?: "-");
  snprintf(left[1], sizeof(left[1]), "%s", getenv("LISTEN_FDS") ?: "-");
  snprintf(left[2], sizeof(left[2]), "%s", getenv("LISTEN_FDNAMES") ?: "-");
  /* None at all. */
  none = obspamd_inherited_sockets(fds + 1, 3);
  dup2(saved, 3);
  close(saved);
  close(sv[0]);
  close(sv[1]);

  cr_assert_eq(other, 0);
  cr_assert_str_eq(other_env, "1");
  cr_assert_eq(mine, 1);
  cr_assert_eq(fds[0], 3);
  cr_assert(flags >= 0 && (flags & O_NONBLOCK));
  cr_assert(fdflags >= 0 && (fdflags & FD_CLOEXEC));
  cr_assert_str_eq(left[0], "-");
  cr_assert_str_eq(left[1], "-");
  cr_assert_str_eq(left[2], "-");
  cr_assert_eq(none, 0);
}

/* ---- the peer check ------------------------------------------------------ */

/* A connected pair of unix: sockets whose peer is a child that is uid (it
   keeps its end open until the parent closes the pipe). */
static int connect_as(uid_t uid, gid_t gid, const char *path, int *hold) {
  struct sockaddr_un sun;
  int lfd, fd, p[2];
  pid_t pid;

  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  unlink(path);
  cr_assert_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  chmod(path, 0666);
  cr_assert_eq(listen(lfd, 4), 0);
  cr_assert_eq(pipe(p), 0);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    char b;
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0 ||
        connect(c, (struct sockaddr *)&sun, sizeof(sun)) != 0)
      _exit(1);
    close(p[1]);
    _exit(read(p[0], &b, 1) < 0);
  }
  close(p[0]);
  fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  cr_assert_geq(fd, 0);
  close(lfd);
  *hold = p[1];
  return fd;
}

static void release(int hold) {
  int status;

  close(hold);
  wait(&status);
}

Test(peers, root_postfix_own_and_allowed_users) {
  /* Copies: getpwnam returns the same static record each time. */
  struct passwd nobody_pw = *getpwnam("nobody"), *nobody = &nobody_pw;
  struct passwd *postfix = getpwnam("postfix");
  long allow;
  int fd, hold, n;

  make_test_dir();
  chmod(test_dir, 0755);
  capture_log();
  obspamd_peers_allow(NULL, 0);
  /* Root, the daemon's own user here. */
  fd = connect_as(0, 0, path_in("s"), &hold);
  cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 1);
  close(fd);
  release(hold);
  if (postfix != NULL) {
    fd = connect_as(postfix->pw_uid, postfix->pw_gid, path_in("s"), &hold);
    cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 1);
    close(fd);
    release(hold);
  }
  /* nobody: refused three times, logged once. */
  for (n = 0; n < 3; n++) {
    fd = connect_as(nobody->pw_uid, nobody->pw_gid, path_in("s"), &hold);
    cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 0);
    close(fd);
    release(hold);
  }
  {
    char *log = logged();

    cr_assert_eq(count_in(log, "peer refused uid="), 1, "%s", log);
    cr_assert(strstr(log, "warning: peer refused uid=65534 user=nobody pid=") !=
                  NULL,
              "%s", log);
    cr_assert(strstr(log, " on unix:/s: only root, postfix, the daemon's user "
                          "and --allow-user users may ask; its connections "
                          "are closed unanswered and not logged again until "
                          "it stops for 60 s\n") != NULL,
              "%s", log);
    free(log);
  }
  /* --allow-user nobody. */
  allow = (long)nobody->pw_uid;
  obspamd_peers_allow(&allow, 1);
  fd = connect_as(nobody->pw_uid, nobody->pw_gid, path_in("s"), &hold);
  cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 1);
  close(fd);
  release(hold);
}

/* A peer whose credentials cannot be read is refused, with its reason. */
Test(peers, credentials_that_cannot_be_read_refuse) {
  int fd, hold;

  make_test_dir();
  capture_log();
  obspamd_peers_allow(NULL, 0);
  fd = connect_as(0, 0, path_in("s"), &hold);
  peercred_fail(ENOTCONN);
  cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 0);
  peercred_fail(0);
  cr_assert_eq(obspamd_peer_allowed(fd, "unix:/s"), 1);
  close(fd);
  release(hold);
  cr_assert(logged_line("warning: peer refused on unix:/s: its credentials "
                        "cannot be read: Transport endpoint is not connected"),
            "%s", logged());
}

Test(peers, tcp_is_not_checked) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int lfd = socket(AF_INET, SOCK_STREAM, 0), c, fd;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lfd, 1), 0);
  getsockname(lfd, (struct sockaddr *)&a, &len);
  c = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
  fd = accept(lfd, NULL, NULL);
  cr_assert_eq(obspamd_peer_allowed(fd, "inet:127.0.0.1:1"), 1);
  close(fd);
  close(c);
  close(lfd);
}
