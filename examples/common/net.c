/* SPDX-License-Identifier: MIT */
/* Socket addresses ("unix:PATH", "inet:HOST:PORT", "inet:[IPV6]:PORT"),
   listening and connecting. This file logs nothing and uses nothing of
   libobspam, so that obspamctl can link it alone: every failure is
   returned as one line in err. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sockets.h"
#include "util.h"

/* How long obspamd_connect waits for a TCP handshake. A Unix socket
   connects or fails at once. */
#define CONNECT_TIMEOUT_MS 10000

static void fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || err_size == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

#define SPEC_FORMS "unix:PATH, inet:HOST:PORT or inet:[IPV6]:PORT"

/* Parses the part after "inet:". */
static int parse_inet(const char *spec, const char *p, obspamd_spec *out,
                      char *err, size_t err_size) {
  const char *host, *host_end, *port;
  size_t host_len, port_len, i;
  unsigned long value = 0;

  if (*p == '[') {
    host = p + 1;
    host_end = strchr(host, ']');
    if (host_end == NULL) {
      fail(err, err_size, "bad socket address '%.200s': missing ']'", spec);
      return -1;
    }
    if (host_end[1] != ':') {
      fail(err, err_size,
           "bad socket address '%.200s': expected ':PORT' after ']'", spec);
      return -1;
    }
    port = host_end + 2;
    out->family = AF_INET6;
  } else {
    host = p;
    host_end = strrchr(p, ':');
    if (host_end == NULL) {
      fail(err, err_size,
           "bad socket address '%.200s': no port: expected inet:HOST:PORT "
           "or inet:[IPV6]:PORT",
           spec);
      return -1;
    }
    if (memchr(host, ':', (size_t)(host_end - host)) != NULL) {
      fail(err, err_size,
           "bad socket address '%.200s': write an IPv6 address in "
           "brackets, as inet:[::1]:PORT",
           spec);
      return -1;
    }
    port = host_end + 1;
    out->family = AF_UNSPEC;
  }
  host_len = (size_t)(host_end - host);
  if (host_len == 0) {
    fail(err, err_size, "bad socket address '%.200s': the host is empty", spec);
    return -1;
  }
  if (host_len >= sizeof(out->host)) {
    fail(err, err_size,
         "bad socket address '%.200s': the host is longer than %zu bytes", spec,
         sizeof(out->host) - 1);
    return -1;
  }
  memcpy(out->host, host, host_len);
  out->host[host_len] = '\0';
  if (out->family == AF_INET6) {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, out->host, &a6) != 1) {
      fail(err, err_size,
           "bad socket address '%.200s': '%s' is not an IPv6 address", spec,
           out->host);
      return -1;
    }
  }
  port_len = strlen(port);
  if (port_len == 0) {
    fail(err, err_size, "bad socket address '%.200s': the port is empty", spec);
    return -1;
  }
  for (i = 0; i < port_len; i++) {
    if (port[i] < '0' || port[i] > '9' || i >= 5)
      break;
    value = value * 10 + (unsigned long)(port[i] - '0');
  }
  if (i < port_len || value > 65535) {
    fail(err, err_size,
         "bad socket address '%.200s': bad port '%.20s': expected a number "
         "0..65535",
         spec, port);
    return -1;
  }
  snprintf(out->port, sizeof(out->port), "%lu", value);
  return 0;
}

int obspamd_spec_parse(const char *spec, obspamd_spec *out, char *err,
                       size_t err_size) {
  const char *c;

  memset(out, 0, sizeof(*out));
  if (spec == NULL || *spec == '\0') {
    fail(err, err_size, "empty socket address: expected %s", SPEC_FORMS);
    return -1;
  }
  for (c = spec; *c != '\0'; c++) {
    if ((unsigned char)*c < 0x20 || *c == 0x7f) {
      fail(err, err_size, "bad socket address: it holds a control character");
      return -1;
    }
  }
  if (strncmp(spec, "unix:", 5) == 0) {
    size_t len = strlen(spec + 5);
    out->family = AF_UNIX;
    if (len == 0) {
      fail(err, err_size, "bad socket address '%.200s': the path is empty",
           spec);
      return -1;
    }
    if (len >= sizeof(out->path)) {
      fail(err, err_size,
           "bad socket address '%.200s': the path is longer than %zu bytes",
           spec, sizeof(out->path) - 1);
      return -1;
    }
    memcpy(out->path, spec + 5, len + 1);
    return 0;
  }
  if (strncmp(spec, "inet:", 5) == 0)
    return parse_inet(spec, spec + 5, out, err, err_size);
  fail(err, err_size, "bad socket address '%.200s': expected %s", spec,
       SPEC_FORMS);
  return -1;
}

static void unix_address(const obspamd_spec *sp, struct sockaddr_un *sun) {
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, sp->path, strlen(sp->path) + 1);
}

/* Tells a stale socket file (a daemon that died without removing it) from
   a live one: only a socket nobody accepts on may be removed. Returns 0
   when the path is free now, -1 with a reason otherwise. */
static int clear_stale(const char *spec, const obspamd_spec *sp, char *err,
                       size_t err_size) {
  struct sockaddr_un sun;
  struct stat st;
  int fd, rc, e;

  if (lstat(sp->path, &st) != 0)
    return 0;
  if (!S_ISSOCK(st.st_mode)) {
    fail(err, err_size,
         "cannot listen on %.200s: %s exists and is not a socket", spec,
         sp->path);
    return -1;
  }
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(err, err_size, "cannot listen on %.200s: socket: %s", spec,
         strerror(errno));
    return -1;
  }
  unix_address(sp, &sun);
  rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
  e = errno;
  close(fd);
  if (rc == 0) {
    fail(err, err_size,
         "cannot listen on %.200s: another process is listening on it", spec);
    return -1;
  }
  if (e != ECONNREFUSED && e != ENOENT) {
    fail(err, err_size, "cannot listen on %.200s: %s: %s", spec, sp->path,
         strerror(e));
    return -1;
  }
  if (unlink(sp->path) != 0 && errno != ENOENT) {
    fail(err, err_size,
         "cannot listen on %.200s: cannot remove the stale %s: %s", spec,
         sp->path, strerror(errno));
    return -1;
  }
  return 0;
}

void obspamd__dir_of(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  size_t len;

  if (slash == NULL) {
    snprintf(dir, size, ".");
    return;
  }
  len = slash == path ? 1 : (size_t)(slash - path);
  snprintf(dir, size, "%.*s", (int)len, path);
}

static int listen_unix(const char *spec, const obspamd_spec *sp, int mode,
                       char *err, size_t err_size) {
  struct sockaddr_un sun;
  int fd;

  if (clear_stale(spec, sp, err, err_size) != 0)
    return -1;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(err, err_size, "cannot listen on %.200s: socket: %s", spec,
         strerror(errno));
    return -1;
  }
  /* On Linux the socket file is created with the mode of the socket's
     inode less the umask: setting it before bind leaves no moment in which
     a stricter mode than the umask's is not in force. chmod afterwards
     makes it exact. */
  if (mode >= 0)
    (void)fchmod(fd, (mode_t)mode);
  unix_address(sp, &sun);
  if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
    int e = errno;
    char dir[sizeof(sp->path)];
    struct stat st;
    obspamd__dir_of(sp->path, dir, sizeof(dir));
    if (e == ENOENT && stat(dir, &st) != 0)
      fail(err, err_size,
           "cannot listen on %.200s: the directory %s does not exist", spec,
           dir);
    else
      fail(err, err_size, "cannot listen on %.200s: bind: %s", spec,
           strerror(e));
    close(fd);
    return -1;
  }
  if (mode >= 0 && chmod(sp->path, (mode_t)mode) != 0) {
    fail(err, err_size, "cannot listen on %.200s: chmod %o: %s", spec,
         (unsigned)mode, strerror(errno));
    unlink(sp->path);
    close(fd);
    return -1;
  }
  if (listen(fd, SOMAXCONN) != 0) {
    fail(err, err_size, "cannot listen on %.200s: listen: %s", spec,
         strerror(errno));
    unlink(sp->path);
    close(fd);
    return -1;
  }
  return fd;
}

static struct addrinfo *resolve(const char *spec, const obspamd_spec *sp,
                                int passive, char *err, size_t err_size) {
  struct addrinfo hints, *res = NULL;
  int rc;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = sp->family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) |
                   (sp->family == AF_INET6 ? AI_NUMERICHOST : 0);
  rc = getaddrinfo(sp->host, sp->port, &hints, &res);
  if (rc != 0) {
    fail(err, err_size, "cannot %s %.200s: cannot resolve '%s': %s",
         passive ? "listen on" : "connect to", spec, sp->host,
         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return NULL;
  }
  return res;
}

static int listen_inet(const char *spec, const obspamd_spec *sp, char *err,
                       size_t err_size) {
  struct addrinfo *res, *ai;
  int fd = -1, one = 1, e = 0;
  const char *step = "socket";

  res = resolve(spec, sp, 1, err, err_size);
  if (res == NULL)
    return -1;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) {
      e = errno;
      step = "socket";
      continue;
    }
    /* A restarted daemon must get its port back while connections of the
       previous one linger in TIME_WAIT. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      e = errno;
      step = "bind";
    } else if (listen(fd, SOMAXCONN) != 0) {
      e = errno;
      step = "listen";
    } else {
      break;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    fail(err, err_size, "cannot listen on %.200s: %s: %s", spec, step,
         strerror(e));
  return fd;
}

int obspamd_listen(const char *spec, int mode, char *err, size_t err_size) {
  obspamd_spec sp;

  if (obspamd_spec_parse(spec, &sp, err, err_size) != 0)
    return -1;
  if (sp.family == AF_UNIX)
    return listen_unix(spec, &sp, mode, err, err_size);
  return listen_inet(spec, &sp, err, err_size);
}

/* A non-blocking connect bounded by CONNECT_TIMEOUT_MS, then a blocking
   socket. */
static int connect_timed(int fd, const struct sockaddr *a, socklen_t len) {
  struct pollfd p;
  int flags, rc, so_error = 0;
  socklen_t so_len = sizeof(so_error);

  flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return -1;
  rc = connect(fd, a, len);
  if (rc != 0 && errno == EINPROGRESS) {
    p.fd = fd;
    p.events = POLLOUT;
    do
      rc = poll(&p, 1, CONNECT_TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (rc < 0)
      return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0)
      return -1;
    if (so_error != 0) {
      errno = so_error;
      return -1;
    }
    rc = 0;
  }
  if (rc != 0)
    return -1;
  return fcntl(fd, F_SETFL, flags);
}

int obspamd_connect(const char *spec, char *err, size_t err_size) {
  obspamd_spec sp;
  struct addrinfo *res, *ai;
  int fd = -1, e = 0;

  if (obspamd_spec_parse(spec, &sp, err, err_size) != 0)
    return -1;
  if (sp.family == AF_UNIX) {
    struct sockaddr_un sun;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      fail(err, err_size, "cannot connect to %.200s: socket: %s", spec,
           strerror(errno));
      return -1;
    }
    unix_address(&sp, &sun);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
      fail(err, err_size, "cannot connect to %.200s: %s", spec,
           strerror(errno));
      close(fd);
      return -1;
    }
    return fd;
  }
  res = resolve(spec, &sp, 0, err, err_size);
  if (res == NULL)
    return -1;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    if (connect_timed(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    e = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    fail(err, err_size, "cannot connect to %.200s: %s", spec,
         e == ETIMEDOUT ? "no answer within 10 s" : strerror(e));
  return fd;
}

int obspamd_socket_name(int fd, char *buf, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char host[INET6_ADDRSTRLEN];
  int n;

  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    n = snprintf(buf, size, "unix:%.*s", (int)sizeof(sun->sun_path),
                 sun->sun_path);
  } else if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    n = snprintf(buf, size, "inet:%s:%u", host, ntohs(sin->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
    n = snprintf(buf, size, "inet:[%s]:%u", host, ntohs(sin6->sin6_port));
  } else {
    return -1;
  }
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* ---- small helpers shared with obspamctl --------------------------------- */

int obspamd_utf8_char(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  int n = p[0] < 0x80             ? 1
          : (p[0] & 0xe0) == 0xc0 ? 2
          : (p[0] & 0xf0) == 0xe0 ? 3
          : (p[0] & 0xf8) == 0xf0 ? 4
                                  : 0;
  int i;

  /* A NUL inside stops the loop as any byte that is not a continuation. */
  for (i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  /* Overlong forms, surrogates and code points above U+10FFFF are not
     UTF-8 either. */
  if ((n == 2 && p[0] < 0xc2) ||
      (n == 3 &&
       ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) ||
      (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || p[0] > 0xf4 ||
                  (p[0] == 0xf4 && p[1] >= 0x90))))
    return 0;
  return n;
}

/* The names are the library's (obspam_kind_name), so that the daemons'
   logs, answers and obspamctl's arguments spell a kind as the library
   does; only an unknown kind is written shorter here. */
const char *obspamd_kind_name(int kind) {
  if (kind < 0 || kind > OBSPAM_SCRIPT)
    return "?";
  return obspam_kind_name(kind);
}

int obspamd_kind_parse(const char *name) {
  int k;

  for (k = 0; name != NULL && k <= OBSPAM_SCRIPT; k++)
    if (strcmp(name, obspam_kind_name(k)) == 0)
      return k;
  return -1;
}

int64_t obspamd_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double obspamd_now_us(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

char *obspamd_iso_time(int64_t t, char *buf, size_t size) {
  time_t tt = (time_t)t;
  struct tm tm;

  if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
    snprintf(buf, size, "-");
    return buf;
  }
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}
