/* SPDX-License-Identifier: MIT */
/* Small helpers of the daemons and obspamctl: the names of the kinds,
   UTF-8, times and the monotonic clock (net.c). */
#ifndef OBSPAMD_UTIL_H
#define OBSPAMD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "subscription", "domain", "mailbox", "script", "plan", "server"; "?" for
   another value. */
const char *obspamd_kind_name(int kind);
/* The kind named so, or -1. */
int obspamd_kind_parse(const char *name);
/* The length of the valid UTF-8 character that starts at s (1 to 4), or
   0 when the byte at s does not start one (a stray continuation byte, an
   overlong form, a surrogate, a code point above U+10FFFF, a sequence cut
   short). s must not be at its terminating NUL. */
int obspamd_utf8_char(const char *s);
/* "2024-05-01T12:34:56Z" (UTC) into buf (at least 21 bytes); "-" for 0. */
char *obspamd_iso_time(int64_t t, char *buf, size_t size);
/* The monotonic clock, which the daemons and obspamctl measure deadlines,
   idle times and durations by: in milliseconds, and in microseconds for
   the latencies the metrics report. */
int64_t obspamd_now_ms(void);
double obspamd_now_us(void);

#endif
