/* SPDX-License-Identifier: MIT */
/* Socket addresses: parsing, listening, connecting. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common_test.h"
#include "sockets.h"
#include "util.h"

static char err[512];

Test(spec, good) {
  obspamd_spec sp;

  cr_assert_eq(obspamd_spec_parse("unix:/run/obspam/control.sock", &sp, err,
                                  sizeof(err)),
               0, "%s", err);
  cr_assert_eq(sp.family, AF_UNIX);
  cr_assert_str_eq(sp.path, "/run/obspam/control.sock");

  cr_assert_eq(obspamd_spec_parse("unix:relative.sock", &sp, err, sizeof(err)),
               0);
  cr_assert_str_eq(sp.path, "relative.sock");

  cr_assert_eq(
      obspamd_spec_parse("inet:127.0.0.1:10040", &sp, err, sizeof(err)), 0,
      "%s", err);
  cr_assert_eq(sp.family, AF_UNSPEC);
  cr_assert_str_eq(sp.host, "127.0.0.1");
  cr_assert_str_eq(sp.port, "10040");

  cr_assert_eq(obspamd_spec_parse("inet:localhost:0", &sp, err, sizeof(err)),
               0);
  cr_assert_str_eq(sp.host, "localhost");
  cr_assert_str_eq(sp.port, "0");

  cr_assert_eq(obspamd_spec_parse("inet:[::1]:9100", &sp, err, sizeof(err)), 0,
               "%s", err);
  cr_assert_eq(sp.family, AF_INET6);
  cr_assert_str_eq(sp.host, "::1");
  cr_assert_str_eq(sp.port, "9100");

  cr_assert_eq(
      obspamd_spec_parse("inet:[2001:db8::25]:00025", &sp, err, sizeof(err)),
      0);
  cr_assert_str_eq(sp.host, "2001:db8::25");
  cr_assert_str_eq(sp.port, "25");

  cr_assert_eq(obspamd_spec_parse("inet:0.0.0.0:65535", &sp, err, sizeof(err)),
               0);
  cr_assert_str_eq(sp.port, "65535");
}

static void bad(const char *spec, const char *expected) {
  obspamd_spec sp;

  snprintf(err, sizeof(err), "(unchanged)");
  cr_assert_eq(obspamd_spec_parse(spec, &sp, err, sizeof(err)), -1,
               "'%s' was accepted", spec ? spec : "(null)");
  cr_assert_str_eq(err, expected, "for '%s'", spec ? spec : "(null)");
}

Test(spec, bad) {
  char longpath[200];

  bad(NULL, "empty socket address: expected unix:PATH, inet:HOST:PORT or "
            "inet:[IPV6]:PORT");
  bad("", "empty socket address: expected unix:PATH, inet:HOST:PORT or "
          "inet:[IPV6]:PORT");
  bad("/run/obspam/control.sock",
      "bad socket address '/run/obspam/control.sock': expected unix:PATH, "
      "inet:HOST:PORT or inet:[IPV6]:PORT");
  bad("tcp:127.0.0.1:25", "bad socket address 'tcp:127.0.0.1:25': expected "
                          "unix:PATH, inet:HOST:PORT or inet:[IPV6]:PORT");
  bad("unix:", "bad socket address 'unix:': the path is empty");
  memset(longpath, 'x', sizeof(longpath));
  memcpy(longpath, "unix:/", 6);
  longpath[5 + 108] = '\0'; /* a path of 108 bytes */
  {
    char expected[400];
    snprintf(expected, sizeof(expected),
             "bad socket address '%s': the path is longer than 107 bytes",
             longpath);
    bad(longpath, expected);
  }
  longpath[5 + 107] = '\0'; /* 107 bytes fit */
  {
    obspamd_spec sp;
    cr_assert_eq(obspamd_spec_parse(longpath, &sp, err, sizeof(err)), 0);
  }
  bad("inet:localhost", "bad socket address 'inet:localhost': no port: "
                        "expected inet:HOST:PORT or inet:[IPV6]:PORT");
  bad("inet::25", "bad socket address 'inet::25': the host is empty");
  bad("inet:[]:25", "bad socket address 'inet:[]:25': the host is empty");
  bad("inet:::1:25", "bad socket address 'inet:::1:25': write an IPv6 "
                     "address in brackets, as inet:[::1]:PORT");
  bad("inet:[::1:25", "bad socket address 'inet:[::1:25': missing ']'");
  bad("inet:[::1]25",
      "bad socket address 'inet:[::1]25': expected ':PORT' after ']'");
  bad("inet:[127.0.0.1]:25", "bad socket address 'inet:[127.0.0.1]:25': "
                             "'127.0.0.1' is not an IPv6 address");
  bad("inet:127.0.0.1:", "bad socket address 'inet:127.0.0.1:': the port is "
                         "empty");
  bad("inet:127.0.0.1:smtp", "bad socket address 'inet:127.0.0.1:smtp': bad "
                             "port 'smtp': expected a number 0..65535");
  bad("inet:127.0.0.1:65536", "bad socket address 'inet:127.0.0.1:65536': "
                              "bad port '65536': expected a number 0..65535");
  bad("inet:127.0.0.1:-1", "bad socket address 'inet:127.0.0.1:-1': bad "
                           "port '-1': expected a number 0..65535");
  bad("inet:127.0.0.1:1000000", "bad socket address "
                                "'inet:127.0.0.1:1000000': bad port "
                                "'1000000': expected a number 0..65535");
  bad("unix:/tmp/a\nb", "bad socket address: it holds a control character");
}

Test(spec, kinds_and_times) {
  char buf[32];

  cr_assert_str_eq(obspamd_kind_name(OBSPAM_MAILBOX), "mailbox");
  cr_assert_str_eq(obspamd_kind_name(OBSPAM_SCRIPT), "script");
  cr_assert_str_eq(obspamd_kind_name(9), "?");
  cr_assert_eq(obspamd_kind_parse("subscription"), OBSPAM_SUBSCRIPTION);
  cr_assert_eq(obspamd_kind_parse("Mailbox"), -1);
  cr_assert_eq(obspamd_kind_parse(NULL), -1);
  cr_assert_str_eq(obspamd_iso_time(1714566667, buf, sizeof(buf)),
                   "2024-05-01T12:31:07Z");
  cr_assert_str_eq(obspamd_iso_time(0, buf, sizeof(buf)), "-");
}

/* ---- listening and connecting -------------------------------------------- */

static int mode_of(const char *path) {
  struct stat st;
  cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
  cr_assert(S_ISSOCK(st.st_mode), "%s is not a socket", path);
  return (int)(st.st_mode & 07777);
}

static void check_flags(int fd) {
  int one = 0;
  socklen_t len = sizeof(one);

  cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "not non-blocking");
  cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "not close-on-exec");
  cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &one, &len), 0);
  cr_assert_eq(one, 1, "not listening");
}

Test(listen, unix_modes) {
  char spec[600];
  int fd, c;

  make_test_dir();
  umask(022);
  snprintf(spec, sizeof(spec), "unix:%s", path_in("ctl.sock"));
  fd = obspamd_listen(spec, 0600, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  check_flags(fd);
  cr_assert_eq(mode_of(path_in("ctl.sock")), 0600);
  c = obspamd_connect(spec, err, sizeof(err));
  cr_assert_geq(c, 0, "%s", err);
  /* A blocking client socket. */
  cr_assert_eq(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
  close(c);
  close(fd);
  /* The file is left behind (stale) and a new listen removes it. */
  fd = obspamd_listen(spec, 0666, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  cr_assert_eq(mode_of(path_in("ctl.sock")), 0666);
  close(fd);
  fd = obspamd_listen(spec, -1, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  cr_assert_eq(mode_of(path_in("ctl.sock")), 0755 & ~022);
  {
    char name[300];
    cr_assert_eq(obspamd_socket_name(fd, name, sizeof(name)), 0);
    cr_assert_str_eq(name, spec);
  }
  close(fd);
}

/* Listening on unix:PATH is refused: "cannot listen on unix:PATH: WHY". */
static void expect_unix_refused(const char *path, const char *why) {
  char spec[600], expected[1200];

  snprintf(spec, sizeof(spec), "unix:%s", path);
  cr_assert_eq(obspamd_listen(spec, 0600, err, sizeof(err)), -1);
  snprintf(expected, sizeof(expected), "cannot listen on %s: %s", spec, why);
  cr_assert_str_eq(err, expected);
}

Test(listen, unix_refusals) {
  char spec[600], expected[900], why[600];
  int fd;

  make_test_dir();
  snprintf(spec, sizeof(spec), "unix:%s", path_in("live.sock"));
  fd = obspamd_listen(spec, 0600, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  /* A live socket is never taken over. */
  expect_unix_refused(path_in("live.sock"),
                      "another process is listening on it");
  close(fd);

  /* A file that is not a socket is never removed. */
  write_file(path_in("file"), "keep me\n");
  snprintf(why, sizeof(why), "%s exists and is not a socket", path_in("file"));
  expect_unix_refused(path_in("file"), why);
  {
    char *kept = read_file(path_in("file"));
    cr_assert_str_eq(kept, "keep me\n");
    free(kept);
  }

  /* The directory must exist. */
  snprintf(why, sizeof(why), "the directory %s does not exist",
           path_in("nodir"));
  expect_unix_refused(path_in("nodir/ctl.sock"), why);

  snprintf(spec, sizeof(spec), "unix:%s", path_in("none.sock"));
  cr_assert_eq(obspamd_connect(spec, err, sizeof(err)), -1);
  snprintf(expected, sizeof(expected),
           "cannot connect to %s: No such file or directory", spec);
  cr_assert_str_eq(err, expected);
}

Test(listen, inet) {
  char name[300], expected[600];
  int fd, fd2, c, reuse = 0;
  socklen_t len = sizeof(reuse);

  fd = obspamd_listen("inet:127.0.0.1:0", -1, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  check_flags(fd);
  cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &len), 0);
  cr_assert_eq(reuse, 1);
  cr_assert_eq(obspamd_socket_name(fd, name, sizeof(name)), 0);
  cr_assert(strncmp(name, "inet:127.0.0.1:", 15) == 0, "%s", name);
  cr_assert_neq(strcmp(name, "inet:127.0.0.1:0"), 0);

  c = obspamd_connect(name, err, sizeof(err));
  cr_assert_geq(c, 0, "%s", err);
  cr_assert_eq(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
  close(c);

  /* The same port again. */
  fd2 = obspamd_listen(name, -1, err, sizeof(err));
  cr_assert_eq(fd2, -1);
  snprintf(expected, sizeof(expected),
           "cannot listen on %s: bind: Address already in use", name);
  cr_assert_str_eq(err, expected);
  close(fd);

  /* Nobody listens there any more. */
  cr_assert_eq(obspamd_connect(name, err, sizeof(err)), -1);
  snprintf(expected, sizeof(expected),
           "cannot connect to %s: Connection "
           "refused",
           name);
  cr_assert_str_eq(err, expected);
}

Test(listen, inet6) {
  char name[300];
  int probe = socket(AF_INET6, SOCK_STREAM, 0), fd, c;
  struct sockaddr_in6 a;

  memset(&a, 0, sizeof(a));
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof(a)) != 0) {
    if (probe >= 0)
      close(probe);
    cr_skip_test("no IPv6 loopback here");
  }
  close(probe);
  fd = obspamd_listen("inet:[::1]:0", -1, err, sizeof(err));
  cr_assert_geq(fd, 0, "%s", err);
  check_flags(fd);
  cr_assert_eq(obspamd_socket_name(fd, name, sizeof(name)), 0);
  cr_assert(strncmp(name, "inet:[::1]:", 11) == 0, "%s", name);
  c = obspamd_connect(name, err, sizeof(err));
  cr_assert_geq(c, 0, "%s", err);
  close(c);
  close(fd);
}
