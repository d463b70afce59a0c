/* SPDX-License-Identifier: MIT */
/* Socket addresses ("unix:PATH", "inet:HOST:PORT"), listening and
   connecting (net.c, which obspamctl links too). */
#ifndef OBSPAMD_SOCKETS_H
#define OBSPAMD_SOCKETS_H

#include <stddef.h>

/* Opens a listening socket, non-blocking and close-on-exec, for
   "unix:PATH" (a stale socket file is removed; mode is applied with chmod
   when mode >= 0) or "inet:HOST:PORT" / "inet:[IPV6]:PORT". Returns the
   descriptor, or -1 with a reason in err. */
int obspamd_listen(const char *spec, int mode, char *err, size_t err_size);
/* Connects to the same kind of spec (used by obspamctl and tests); a
   blocking socket, or -1 with a reason in err. */
int obspamd_connect(const char *spec, char *err, size_t err_size);

/* A parsed spec. For inet, host is without brackets and family is
   AF_INET6 for a bracketed host, AF_UNSPEC otherwise (a name or an IPv4
   address, resolved when used). */
typedef struct obspamd_spec {
  int family; /* AF_UNIX, AF_INET6 or AF_UNSPEC */
  char path[108];
  char host[256];
  char port[8]; /* decimal, 0..65535 */
} obspamd_spec;

/* Parses "unix:PATH", "inet:HOST:PORT" or "inet:[IPV6]:PORT". Returns 0,
   or -1 with a one-line reason in err, e.g. "bad socket address
   'inet:::1:25': write an IPv6 address in brackets, as inet:[::1]:PORT". */
int obspamd_spec_parse(const char *spec, obspamd_spec *out, char *err,
                       size_t err_size);
/* The spec of the address a socket is bound to ("inet:127.0.0.1:40123",
   "inet:[::1]:40123", "unix:/run/obspam/control.sock"): how a daemon that
   listened on port 0 tells which port it got. Returns 0 or -1. */
int obspamd_socket_name(int fd, char *buf, size_t size);

/* The control socket obspamctl asks when it is given none (a path). */
#define OBSPAMD_CONTROL_DEFAULT "/run/obspam/control.sock"

#endif
