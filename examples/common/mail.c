/* SPDX-License-Identifier: MIT */
/* Notification mail: the text of a notice mail, the command that sends it
   (--notify-command, e.g. "/usr/sbin/sendmail -t", which reads the
   recipients from the To: header), and the queue and thread that run it,
   so that neither a flush nor a decision in notify-immediate mode waits
   for a slow or hung command. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "service.h"
#include "sockets.h"
#include "util.h"

extern char **environ;

/* At most this many mails wait for the command; beyond, a burst of notices
   (a spam run refused at thousands of mailboxes) is logged, not mailed. */
#define MAIL_QUEUE_MAX 1000
#define DEFAULT_TIMEOUT_S 30
/* At most this many mails go to one address in an hour (from the first
   of them). An implicit mailbox is named by a sender the client chose,
   so whoever can send from a hosted domain can make one notice per
   sender, each a mail to the admin and one to the contact; a real
   incident at one customer is a few notices an hour. Past the bound the
   notices are still logged, each on its line. */
#define MAIL_PER_ADDRESS 100
#define MAIL_WINDOW_S 3600
/* The addresses counted at once: the admin and the contacts that got
   mail lately. A new one takes the place of the one unused longest. */
#define MAIL_ADDRESSES 64

/* ---- running the command ------------------------------------------------- */

/* Keeps the first line of the command's output, for the log. */
static void keep_output(char *first, size_t size, size_t *len, const char *buf,
                        size_t n) {
  size_t i;

  for (i = 0; i < n && *len + 1 < size; i++) {
    if (buf[i] == '\n' && *len > 0) {
      /* The first non-empty line is enough: stop keeping. */
      first[*len] = '\0';
      *len = size;
      return;
    }
    if (buf[i] != '\n')
      first[(*len)++] = buf[i];
  }
  if (*len < size)
    first[*len] = '\0';
}

static void status_text(int status, const char *output, char *why,
                        size_t why_size) {
  if (WIFEXITED(status))
    snprintf(why, why_size, "exited with status %d%s%s", WEXITSTATUS(status),
             *output ? ": " : "", output);
  else if (WIFSIGNALED(status))
    snprintf(why, why_size, "killed by signal %d%s%s", WTERMSIG(status),
             *output ? ": " : "", output);
  else
    snprintf(why, why_size, "ended with wait status %d", status);
}

int obspamd__run_command(const char *command, const char *input, size_t len,
                         int timeout_ms, char *why, size_t why_size) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, deflt;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, rc, status = 0, exited = 0;
  char *argv[4], output[256] = "", buf[4096];
  size_t sent = 0, kept = 0;
  int64_t deadline = obspamd_now_ms() + timeout_ms;
  pid_t pid;

  snprintf(why, why_size, "unknown error");
  /* stdin is a socket rather than a pipe so that writing to a command that
     exited early gives EPIPE (MSG_NOSIGNAL) instead of a SIGPIPE that would
     kill the daemon. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
      pipe2(out, O_CLOEXEC) != 0) {
    snprintf(why, why_size, "cannot run /bin/sh: %s", strerror(errno));
    goto close_all;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[1], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawnattr_init(&attr);
  /* The command starts with the signals a shell expects (the daemon's
     threads block them all, and it may ignore SIGPIPE), in a process group
     of its own, which a timeout kills whole. */
  sigemptyset(&none);
  sigfillset(&deflt);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  argv[0] = "sh";
  argv[1] = "-c";
  argv[2] = (char *)command;
  argv[3] = NULL;
  rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[1]);
  close(out[1]);
  in[1] = out[1] = -1;
  if (rc != 0) {
    snprintf(why, why_size, "cannot run /bin/sh: %s", strerror(rc));
    goto close_all;
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  if (len == 0)
    shutdown(in[0], SHUT_WR);

  for (;;) {
    struct pollfd p[2];
    int np = 0, wait_ms;
    int64_t left = deadline - obspamd_now_ms();
    pid_t w;

    if (!exited) {
      w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = 1;
      } else if (w < 0 && errno != EINTR) {
        /* ECHILD: a daemon that ignores SIGCHLD has its children reaped
           by the kernel, and their status is lost. */
        snprintf(why, why_size, "cannot get its exit status: %s%s",
                 strerror(errno),
                 errno == ECHILD ? " (is SIGCHLD ignored?)" : "");
        goto close_all;
      }
    }
    if (out[0] < 0 && exited)
      break;
    if (left <= 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      if (!exited)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
          ;
      snprintf(why, why_size, "timed out after %d s: killed%s%s",
               (timeout_ms + 999) / 1000, *output ? ": " : "", output);
      goto close_all;
    }
    if (out[0] >= 0) {
      p[np].fd = out[0];
      p[np].events = POLLIN;
      np++;
    }
    if (in[0] >= 0 && sent < len) {
      p[np].fd = in[0];
      p[np].events = POLLOUT;
      np++;
    }
    /* The exit of the command is polled with waitpid: short sleeps while
       it runs, which costs nothing next to running a sendmail. */
    wait_ms = left < 20 ? (int)left : 20;
    if (np > 0)
      rc = poll(p, (nfds_t)np, wait_ms);
    else
      rc = poll(NULL, 0, wait_ms);
    if (rc < 0 && errno != EINTR) {
      snprintf(why, why_size, "poll: %s", strerror(errno));
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
      goto close_all;
    }
    if (out[0] >= 0) {
      ssize_t n = read(out[0], buf, sizeof(buf));
      if (n > 0) {
        keep_output(output, sizeof(output), &kept, buf, (size_t)n);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(out[0]);
        out[0] = -1;
      }
    }
    if (in[0] >= 0 && sent < len) {
      ssize_t n =
          send(in[0], input + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += (size_t)n;
        if (sent == len)
          shutdown(in[0], SHUT_WR);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        /* The command closed its input: its exit status says whether it
           cared. */
        close(in[0]);
        in[0] = -1;
      }
    }
    if (exited && out[0] >= 0) {
      /* Whatever the command left in the pipe, then done: a background
         child of it that keeps the pipe open must not hold us up. */
      ssize_t n;
      while ((n = read(out[0], buf, sizeof(buf))) > 0)
        keep_output(output, sizeof(output), &kept, buf, (size_t)n);
      close(out[0]);
      out[0] = -1;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    rc = 0;
    snprintf(why, why_size, "exited with status 0");
  } else {
    status_text(status, output, why, why_size);
    rc = -1;
  }
  if (in[0] >= 0)
    close(in[0]);
  return rc;

close_all:
  if (in[0] >= 0)
    close(in[0]);
  if (in[1] >= 0)
    close(in[1]);
  if (out[0] >= 0)
    close(out[0]);
  if (out[1] >= 0)
    close(out[1]);
  return -1;
}

/* ---- the text of a mail -------------------------------------------------- */

/* RFC 5322 date, in English whatever the locale. */
static void rfc5322_date(int64_t when, char *buf, size_t size) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  time_t t = (time_t)when;
  struct tm tm;

  gmtime_r(&t, &tm);
  snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
}

/* "2024-05-01 12:31:07 UTC", or "none" for 0. */
static void human_time(int64_t when, char *buf, size_t size) {
  time_t t = (time_t)when;
  struct tm tm;

  if (when == 0) {
    snprintf(buf, size, "none");
    return;
  }
  gmtime_r(&t, &tm);
  snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *plural(int64_t n, const char *one, const char *many) {
  return n == 1 ? one : many;
}

/* "20 recipients" or "20 messages", as the engine counts. */
static void counted(int unit, int64_t n, char *buf, size_t size) {
  snprintf(buf, size, "%" PRId64 " %s", n,
           unit == 1 ? plural(n, "message", "messages")
                     : plural(n, "recipient", "recipients"));
}

/* The limit a notice is about, in the words of its window: for the Limit:
   line ("20 recipients per hour", "10 recipients per message",
   "unlimited", "scripts may not send mail") and, in over (empty for
   forbidden scripts and an unlimited limit), for "over its limit of ..."
   ("1000 per day", "10 recipients per message"). */
static void notice_limit(const obspam_notice *n, int reason, int unit,
                         char *line, size_t line_size, char *over,
                         size_t over_size) {
  char c[48];

  over[0] = '\0';
  if (reason == OBSPAMD_REASON_SCRIPTS) {
    snprintf(line, line_size, "scripts may not send mail");
  } else if (reason == OBSPAMD_REASON_CAP) {
    counted(0, n->limit, c, sizeof(c));
    snprintf(line, line_size, "%s per message", c);
    snprintf(over, over_size, "%s per message", c);
  } else if (n->limit < 0) {
    snprintf(line, line_size, "unlimited");
  } else {
    const char *per = obspamd_window_per(
        reason == OBSPAMD_REASON_MINUTE ? OBSPAM_WINDOW_MINUTE
        : reason == OBSPAMD_REASON_DAY  ? OBSPAM_WINDOW_DAY
                                        : OBSPAM_WINDOW_HOUR);
    counted(unit, n->limit, c, sizeof(c));
    snprintf(line, line_size, "%s %s", c, per);
    snprintf(over, over_size, "%" PRId64 " %s", n->limit, per);
  }
}

/* Appends s to buf as one word for a POSIX shell: as it is when it holds
   only characters no shell treats specially, else in single quotes. A
   quote inside is written '\'', a run of them in double quotes: a name
   of 320 quotes (a sender's choice) would otherwise make a line of more
   than the 998 bytes a mail may have. */
static void shell_word(obspamd__text *t, const char *s) {
  const char *c;

  for (c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || (unsigned char)*c >= 0x80 ||
          strchr("@%+-./:=_,", *c) != NULL))
      break;
  if (*c == '\0' && *s != '\0') {
    obspamd__put(t, "%s", s);
    return;
  }
  obspamd__put(t, "'");
  for (c = s; *c; c++) {
    size_t run = strspn(c, "'");

    if (run == 0) {
      obspamd__put(t, "%c", *c);
    } else if (run == 1) {
      obspamd__put(t, "'\\''");
    } else {
      obspamd__put(t, "'\"%.*s\"'", (int)run, c);
      c += run - 1;
    }
  }
  obspamd__put(t, "'");
}

void obspamd__refusal_grep(int kind, const char *name, char *buf, size_t size) {
  char re[4 * OBSPAM_NAME_MAX + 64];
  obspamd__text r = {re, sizeof(re), 0}, t = {buf, size, 0};
  const char *c;

  /* The refusal line names the object that kept the message out, and the
     login and sender of the message: "refuse kind=mailbox
     object=info@example.com ... sasl=info@example.com sender=- ...". A
     mailbox or domain over its own limit is not always the one named (a
     parent may have kept the message out longer), but its mail always
     carries its login or sender. Logins and senders are logged as the
     client wrote them: -i. */
  if (kind == OBSPAM_MAILBOX)
    obspamd__put(&r, "refuse .* (object|sasl|sender)=");
  else if (kind == OBSPAM_DOMAIN)
    obspamd__put(&r, "refuse .* (object=|(sasl|sender)=[^ ]*@)");
  else
    obspamd__put(&r, "refuse kind=%s object=", obspamd_kind_name(kind));
  for (c = name; *c; c++)
    obspamd__put(&r, strchr(".[]()*+?{}|^$\\", *c) != NULL ? "\\%c" : "%c", *c);
  obspamd__put(&r, " ");
  if (r.len >= r.size)
    re[r.size - 1] = '\0';
  obspamd__put(&t, "grep -iE ");
  shell_word(&t, re);
  if (size > 0 && t.len >= size)
    buf[size - 1] = '\0';
}

/* A Subject: header. Text outside ASCII (a name such as jörg@example.com)
   is written as RFC 2047 encoded words ("=?UTF-8?B?...?="), each of whole
   characters and at most 39 bytes, so that no line is longer than 76
   characters; the subject stays printable ASCII. */
static void put_subject(obspamd__text *t, const char *text) {
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = (const unsigned char *)text;
  size_t i, n, len = strlen(text);
  int ascii = 1;

  /* Text that holds "=?" is encoded too: a name that is an encoded word
     (a sender an attacker chose) would otherwise be decoded by mail
     readers into a subject of its own. */
  for (i = 0; i < len; i++)
    if (p[i] >= 0x80 || (p[i] == '=' && p[i + 1] == '?'))
      ascii = 0;
  if (ascii) {
    obspamd__put(t, "Subject: %s\n", text);
    return;
  }
  obspamd__put(t, "Subject:");
  for (i = 0; i < len; i += n) {
    size_t j;
    /* Whole characters only: the text was cleaned into valid UTF-8. */
    for (n = 0; i + n < len;) {
      int c = p[i + n] < 0x80 ? 1 : obspamd_utf8_char(text + i + n);
      if (c == 0)
        c = 1;
      if (n + (size_t)c > 39)
        break;
      n += (size_t)c;
    }
    obspamd__put(t, " =?UTF-8?B?");
    for (j = 0; j < n; j += 3) {
      unsigned v = (unsigned)p[i + j] << 16;
      if (j + 1 < n)
        v |= (unsigned)p[i + j + 1] << 8;
      if (j + 2 < n)
        v |= p[i + j + 2];
      obspamd__put(t, "%c%c%c%c", b64[v >> 18 & 63], b64[v >> 12 & 63],
                   j + 1 < n ? b64[v >> 6 & 63] : '=',
                   j + 2 < n ? b64[v & 63] : '=');
    }
    obspamd__put(t, "?=\n");
  }
}

/* What became of the refused mail, as the daemon refuses it. */
static void refused_how(const obspamd__mail_info *mi, obspamd__text *t) {
  const char *how = mi->reject ? "rejected" : "deferred";
  const char *why =
      mi->reject ? "(the sender got an error)" : "(the sending server retries)";

  if (mi->local_action == OBSPAMD_LOCAL_NONE) {
    obspamd__put(t, "%s %s\n", how, why);
    return;
  }
  /* The milter refuses SMTP mail with the action of the configuration,
     and holds or bounces a local submission, whose sending program does
     not retry. */
  obspamd__put(t, "%s over SMTP %s;\n                  %s\n", how, why,
               mi->local_action == OBSPAMD_LOCAL_HOLD
                   ? "held when submitted locally (postsuper -H releases it)"
                   : "returned to the sender when submitted locally");
}

/* NULL when to is one address, local@domain, or why it is not. The
   command (sendmail -t) reads the To: header as a list: a ',' or ';'
   there adds a recipient ("ops@example.com,root" mails local root too),
   '<' '>' quotes, comments and groups name another, and bytes that are no
   UTF-8 are written as '?', another address. The library refuses such a
   contact; --admin and whatever else gives an address are checked here
   too, so that no mail ever goes where nobody asked. */
static const char *not_one_address(const char *to) {
  const unsigned char *s = (const unsigned char *)to;
  const char *at = strchr(to, '@');
  int len;

  if (at == NULL || at == to || at[1] == '\0' || strchr(at + 1, '@') != NULL)
    return "it is not one local@domain";
  for (; *s != '\0'; s += len) {
    len = obspamd_utf8_char((const char *)s);
    if (len == 0)
      return "it is not UTF-8";
    if (*s <= 0x20 || *s == 0x7f || strchr(",;:<>()[]\\\"", *s) != NULL)
      return "it holds a blank, a control character or one of , ; : < > ( "
             ") [ ] \\ \"";
  }
  return NULL;
}

size_t obspamd__notice_mail(const obspamd__mail_info *mi,
                            const obspam_notice *n, int for_contact, char *buf,
                            size_t size) {
  char name[OBSPAM_NAME_MAX + 1], sub[OBSPAM_NAME_MAX + 1],
      contact[OBSPAM_NAME_MAX + 1], admin[OBSPAM_NAME_MAX + 1],
      from[OBSPAM_NAME_MAX + 1], host[256], daemon[64], date[40], first[40],
      last[40], ps[40], pe[40], limit[64], over[64], sent[48],
      grep[6 * OBSPAM_NAME_MAX + 80], ctl[200] = "",
                                      subject[OBSPAM_NAME_MAX + 100];
  const char *kind = obspamd_kind_name(n->kind);
  int64_t exceeded = n->struct_size >= sizeof(*n) ? n->exceeded : n->refused;
  int reason = mi->scripts ? OBSPAMD_REASON_SCRIPTS : obspamd_notice_reason(n);
  obspamd__text t = {buf, size, 0};

  /* Header values hold printable ASCII only, so that no byte of them can
     end a header line; the subject carries a name outside ASCII encoded.
     The addresses of To: and Reply-To: keep their UTF-8 characters
     (RFC 6532: sendmail -t takes them, and Postfix sends such mail with
     SMTPUTF8): an address has no ASCII form, and one written with '?'
     instead is another address. */
  obspamd__clean(contact, sizeof(contact), n->contact ? n->contact : "",
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  obspamd__clean(admin, sizeof(admin), mi->admin ? mi->admin : "",
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  /* No mail goes to what is not one address (obspamd__mailer_queue): the
     contact is not told to reply to it, nor the admin that it got a copy. */
  if (mi->admin != NULL && not_one_address(mi->admin) != NULL)
    admin[0] = '\0';
  if (!for_contact && n->contact != NULL && not_one_address(n->contact) != NULL)
    contact[0] = '\0';
  obspamd__clean(from, sizeof(from), mi->from, OBSPAMD__CLEAN_NO_BLANK);
  obspamd__clean(host, sizeof(host), mi->hostname, OBSPAMD__CLEAN_NO_BLANK);
  obspamd__clean(daemon, sizeof(daemon), mi->daemon, OBSPAMD__CLEAN_NO_BLANK);
  /* The body is UTF-8: a name keeps its characters. */
  obspamd__clean(name, sizeof(name), n->name,
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  obspamd__clean(sub, sizeof(sub), n->subscription ? n->subscription : "",
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  rfc5322_date(mi->now, date, sizeof(date));
  human_time(n->first_refused, first, sizeof(first));
  human_time(n->last_refused, last, sizeof(last));
  human_time(n->period_start, ps, sizeof(ps));
  human_time(n->period_end, pe, sizeof(pe));
  notice_limit(n, reason, mi->unit, limit, sizeof(limit), over, sizeof(over));
  counted(mi->unit, n->sent, sent, sizeof(sent));
  obspamd__refusal_grep(n->kind, name, grep, sizeof(grep));
  /* obspamctl asks /run/obspam/control.sock unless told otherwise. */
  if (mi->control != NULL && *mi->control != '\0' &&
      strcmp(mi->control, OBSPAMD_CONTROL_DEFAULT) != 0) {
    obspamd__text c = {ctl, sizeof(ctl), 0};
    obspamd__put(&c, " --control ");
    shell_word(&c, mi->control);
    if (c.len >= c.size)
      ctl[0] = '\0';
  }

  obspamd__put(&t, "From: %s <%s>\n", daemon, from);
  obspamd__put(&t, "To: %s\n", for_contact ? contact : admin);
  if (for_contact && *admin)
    obspamd__put(&t, "Reply-To: %s\n", admin);
  snprintf(subject, sizeof(subject),
           "[obspam] %s %s: %" PRId64 " over-the-limit %s", kind, name,
           exceeded, plural(exceeded, "attempt", "attempts"));
  put_subject(&t, subject);
  obspamd__put(&t, "Date: %s\n", date);
  obspamd__put(&t, "Auto-Submitted: auto-generated\n");
  obspamd__put(&t, "MIME-Version: 1.0\n");
  obspamd__put(&t, "Content-Type: text/plain; charset=UTF-8\n");
  obspamd__put(&t, "Content-Transfer-Encoding: 8bit\n");
  obspamd__put(&t, "\n");

  if (for_contact) {
    obspamd__put(&t, "Hello,\n\n");
    if (n->kind == OBSPAM_SUBSCRIPTION || *sub == '\0')
      obspamd__put(&t, "Your %s %s\n", kind, name);
    else
      obspamd__put(&t, "The %s %s of your subscription %s\n", kind, name, sub);
    if (*over)
      obspamd__put(
          &t, "tried to send more mail than its limit of %s allows.\n\n", over);
    else
      obspamd__put(&t, "tried to send more mail than its limit allows.\n\n");
  } else if (*over) {
    obspamd__put(&t, "The %s %s went over its limit of %s\non %s.\n\n", kind,
                 name, over, host);
  } else {
    obspamd__put(&t, "The %s %s went over its sending limit\non %s.\n\n", kind,
                 name, host);
  }

  obspamd__put(&t, "  Object:         %s %s\n", kind, name);
  if (*sub && n->kind != OBSPAM_SUBSCRIPTION)
    obspamd__put(&t, "  Subscription:   %s\n", sub);
  if (!for_contact && *contact)
    obspamd__put(&t, "  Contact:        %s (sent a copy of this notice)\n",
                 contact);
  obspamd__put(&t, "  Limit:          %s\n", limit);
  obspamd__put(&t, "  Period:         %s to %s\n", ps, pe);
  obspamd__put(&t, "  Sent:           %s in the period\n", sent);
  obspamd__put(&t, "  Refused:        %" PRId64 " over-the-limit %s\n",
               exceeded, plural(exceeded, "attempt", "attempts"));
  /* Refusals of this object's mail that another object's limit caused
     (a parent at its limit) are not its own excess, but were refused. */
  if (n->refused > exceeded)
    obspamd__put(&t,
                 "                  and %" PRId64
                 " more while another limit was "
                 "reached\n",
                 n->refused - exceeded);
  obspamd__put(&t, "  Refused mail:   ");
  refused_how(mi, &t);
  obspamd__put(&t, "  First refusal:  %s\n", first);
  obspamd__put(&t, "  Last refusal:   %s\n\n", last);

  obspamd__put(&t, "What to do:\n");
  if (for_contact) {
    obspamd__put(
        &t, "- If you did not send this mail, the password of a mailbox may "
            "have been\n  stolen, or a form or script of your web site "
            "abused: change the\n  password and check your site's "
            "scripts.\n");
    if (reason == OBSPAMD_REASON_SCRIPTS)
      obspamd__put(&t, "- If the mail was legitimate, ask your hosting "
                       "provider to let your\n  scripts send mail");
    else if (reason == OBSPAMD_REASON_CAP)
      obspamd__put(&t,
                   "- If the mail was legitimate, send each message to at most "
                   "%" PRId64 "\n  %s, or ask your hosting provider for a "
                   "higher limit",
                   n->limit, plural(n->limit, "recipient", "recipients"));
    else
      obspamd__put(
          &t,
          "- If the mail was legitimate, wait until the count of %s\n"
          "  is below the limit, or ask your hosting provider for a higher "
          "limit",
          reason == OBSPAMD_REASON_MINUTE ? "the last minute"
          : reason == OBSPAMD_REASON_DAY  ? "the last 24 hours"
                                          : "the last 60 minutes");
    if (*admin)
      obspamd__put(&t, ":\n  reply to this mail (%s).\n", admin);
    else
      obspamd__put(&t, ".\n");
  } else {
    /* Forbidden scripts have no limit to raise. */
    const char *legitimate =
        reason == OBSPAMD_REASON_SCRIPTS
            ? "let its scripts send (scripts=yes) in the configuration"
            : "raise the limit in the configuration";

    obspamd__put(
        &t,
        "- If this traffic is not expected, a password may have been stolen "
        "or a\n  script abused. %s logs each refusal (syslog, facility\n"
        "  mail) on a line of its own; the lines about this %s:\n"
        "    %s\n",
        daemon, kind, grep);
    if (mi->control != NULL && *mi->control != '\0') {
      /* obspamctl reads options after its command too: a name that
         starts with '-' (a sender's choice) follows "--". */
      obspamd__put(&t, "  The live figures:\n    obspamctl%s status %s %s", ctl,
                   kind, name[0] == '-' ? "-- " : "");
      shell_word(&t, name);
      obspamd__put(&t, "\n    obspamctl%s report --since 24h\n", ctl);
      obspamd__put(&t,
                   "- If the traffic is legitimate, %s\n  file and reload it: "
                   "obspamctl%s reload\n",
                   legitimate, ctl);
    } else {
      obspamd__put(&t,
                   "  (%s has no control socket for obspamctl: see its\n"
                   "  --control option.)\n",
                   daemon);
      obspamd__put(&t,
                   "- If the traffic is legitimate, %s\n  file and reload it: "
                   "send %s a SIGHUP.\n",
                   legitimate, daemon);
    }
  }
  obspamd__put(&t, "\n-- \n%s on %s\n", daemon, host);
  if (size > 0 && t.len >= size)
    buf[size - 1] = '\0';
  return t.len;
}

/* ---- the queue ----------------------------------------------------------- */

typedef struct mail {
  struct mail *next;
  char *to, *what, *text;
  size_t len;
} mail;

/* The mails of one address in its hour. */
typedef struct mail_budget {
  char to[OBSPAM_NAME_MAX + 1];
  int64_t start;    /* its hour's first mail, seconds; 0: a free place */
  int64_t used;     /* its last mail, for the choice of a place */
  uint32_t queued;  /* mails queued in the hour */
  uint32_t dropped; /* mails over the bound in the hour */
} mail_budget;

struct obspamd__mailer {
  obspamd_service *s;
  const char *command;
  int timeout_ms;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mail *head, *tail;
  size_t queued;
  int stopping;
  int64_t stop_deadline_ms;
  mail_budget budget[MAIL_ADDRESSES];
};

static void mail_free(mail *m) {
  free(m->to);
  free(m->what);
  free(m->text);
  free(m);
}

static void *mailer_thread(void *arg) {
  obspamd__mailer *q = arg;
  obspamd_metrics *mt = &q->s->metrics;

  pthread_mutex_lock(&q->lock);
  for (;;) {
    mail *m;
    int timeout_ms;
    char why[512];
    while (q->head == NULL && !q->stopping)
      pthread_cond_wait(&q->cond, &q->lock);
    if (q->head == NULL)
      break;
    m = q->head;
    q->head = m->next;
    if (q->head == NULL)
      q->tail = NULL;
    q->queued--;
    timeout_ms = q->timeout_ms;
    if (q->stopping) {
      int64_t left = q->stop_deadline_ms - obspamd_now_ms();
      if (left < timeout_ms)
        timeout_ms = (int)(left > 0 ? left : 0);
    }
    pthread_mutex_unlock(&q->lock);
    /* A command given less than a tenth of a second would only be
       killed: the mail is dropped instead. Each outcome is logged before
       its counter moves, so whoever reads the counter finds the line. */
    if (timeout_ms < 100) {
      obspamd_log(LOG_WARNING, "mail dropped to=%s %s: the daemon is stopping",
                  m->to, m->what);
      __atomic_add_fetch(&mt->mails_dropped, 1, __ATOMIC_RELAXED);
    } else if (obspamd__run_command(q->command, m->text, m->len, timeout_ms,
                                    why, sizeof(why)) == 0) {
      obspamd_log(LOG_INFO, "mail sent to=%s %s", m->to, m->what);
      __atomic_add_fetch(&mt->mails_sent, 1, __ATOMIC_RELAXED);
    } else {
      obspamd_log(LOG_ERR, "mail failed to=%s %s: notify command %s", m->to,
                  m->what, why);
      __atomic_add_fetch(&mt->mails_failed, 1, __ATOMIC_RELAXED);
    }
    mail_free(m);
    pthread_mutex_lock(&q->lock);
  }
  pthread_mutex_unlock(&q->lock);
  return NULL;
}

obspamd__mailer *obspamd__mailer_start(obspamd_service *s) {
  obspamd__mailer *q = calloc(1, sizeof(*q));

  if (q == NULL)
    return NULL;
  q->s = s;
  q->command = s->notify_command;
  q->timeout_ms =
      (s->notify_timeout > 0 ? s->notify_timeout : DEFAULT_TIMEOUT_S) * 1000;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->cond, NULL);
  if (obspamd__thread_create(&q->thread, mailer_thread, q) != 0) {
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
    return NULL;
  }
  return q;
}

void obspamd__mailer_stop(obspamd__mailer *q) {
  pthread_mutex_lock(&q->lock);
  q->stopping = 1;
  q->stop_deadline_ms = obspamd_now_ms() + q->timeout_ms;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
  pthread_join(q->thread, NULL);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
  free(q);
}

/* Counts a mail to the address to at now, under the queue's lock:
   MAIL_OK when it is within the address's bound, MAIL_OVER when it is
   over it, MAIL_FIRST_OVER for the first such mail of the address's
   hour. *until gets the end of that hour, *ended the mails dropped in
   the hour that this mail ends (0 when none ended or none were
   dropped). */
enum { MAIL_OK, MAIL_OVER, MAIL_FIRST_OVER };

static int within_budget(obspamd__mailer *q, const char *to, int64_t now,
                         int64_t *until, uint32_t *ended) {
  mail_budget *b = NULL;
  size_t i;

  *ended = 0;
  for (i = 0; i < MAIL_ADDRESSES && b == NULL; i++)
    if (q->budget[i].start != 0 && strcmp(q->budget[i].to, to) == 0)
      b = &q->budget[i];
  if (b == NULL) {
    /* A free place has used 0, as has none in use. */
    b = &q->budget[0];
    for (i = 1; i < MAIL_ADDRESSES; i++)
      if (q->budget[i].used < b->used)
        b = &q->budget[i];
    memset(b, 0, sizeof(*b));
    /* An address longer than the place is counted under its first
       bytes: the bound may then be shared, never lost. */
    snprintf(b->to, sizeof(b->to), "%s", to);
    b->start = now;
  } else if (now - b->start >= MAIL_WINDOW_S || now < b->start) {
    *ended = b->dropped;
    b->start = now;
    b->queued = b->dropped = 0;
  }
  b->used = now;
  *until = b->start + MAIL_WINDOW_S;
  if (b->queued < MAIL_PER_ADDRESS) {
    b->queued++;
    return MAIL_OK;
  }
  return b->dropped++ == 0 ? MAIL_FIRST_OVER : MAIL_OVER;
}

void obspamd__mailer_queue(obspamd__mailer *q, const char *to, const char *what,
                           char *text, size_t len) {
  mail *m = calloc(1, sizeof(*m));
  obspamd_metrics *mt = &q->s->metrics;
  int64_t until = 0;
  uint32_t ended = 0;
  int budget = MAIL_OK;
  const char *why = NULL;

  if (m != NULL) {
    m->to = strdup(to);
    m->what = strdup(what);
  }
  if (m == NULL || m->to == NULL || m->what == NULL) {
    if (m != NULL) {
      free(m->to);
      free(m->what);
      free(m);
    }
    free(text);
    obspamd_log(LOG_ERR, "mail dropped to=%s %s: out of memory", to, what);
    __atomic_add_fetch(&mt->mails_dropped, 1, __ATOMIC_RELAXED);
    return;
  }
  m->text = text;
  m->len = len;
  why = not_one_address(to);
  if (why != NULL) {
    char shown[OBSPAM_NAME_MAX + 1];

    obspamd__clean(shown, sizeof(shown), to,
                   OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
    obspamd_log(LOG_ERR, "mail not sent to=%s %s: not one address: %s", shown,
                what, why);
    __atomic_add_fetch(&mt->mails_dropped, 1, __ATOMIC_RELAXED);
    mail_free(m);
    return;
  }
  pthread_mutex_lock(&q->lock);
  if (q->stopping)
    why = "the daemon is stopping";
  else
    budget = within_budget(q, to, (int64_t)time(NULL), &until, &ended);
  if (budget == MAIL_OK && why == NULL && q->queued >= MAIL_QUEUE_MAX)
    why = "more than 1000 mails are waiting";
  if (budget == MAIL_OK && why == NULL) {
    if (q->tail != NULL)
      q->tail->next = m;
    else
      q->head = m;
    q->tail = m;
    q->queued++;
    pthread_cond_signal(&q->cond);
  }
  pthread_mutex_unlock(&q->lock);
  if (ended > 0)
    obspamd_log(LOG_NOTICE,
                "mail to=%s: %" PRIu32 " more notices of the hour before "
                "were logged, not mailed",
                to, ended);
  if (budget == MAIL_OK && why == NULL)
    return;
  /* Over the bound, only the first mail of the hour is said. */
  if (budget == MAIL_FIRST_OVER) {
    char when[40];

    human_time(until, when, sizeof(when));
    obspamd_log(LOG_WARNING,
                "mail dropped to=%s %s: %d mails to this address in an "
                "hour; until %s its notices are logged, not mailed",
                to, what, MAIL_PER_ADDRESS, when);
  } else if (why != NULL) {
    obspamd_log(LOG_WARNING, "mail dropped to=%s %s: %s", to, what, why);
  }
  __atomic_add_fetch(&mt->mails_dropped, 1, __ATOMIC_RELAXED);
  mail_free(m);
}
