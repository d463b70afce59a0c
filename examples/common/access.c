/* SPDX-License-Identifier: MIT */
/* Who may ask the daemons, and what they run as: the peer check of unix:
   listeners, the group of their socket files, sockets handed over by
   systemd, and dropping root (see access.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "internal.h"
#include "log.h"
#include "options.h"
#include "util.h"

/* ---- who may connect ----------------------------------------------------- */

/* A refused user's episode ends after this long without a refusal. */
#define EPISODE_MS 60000
/* Users whose episodes are remembered at once; beyond that the oldest is
   forgotten, and logged again if it comes back. */
#define EPISODE_SLOTS 32

static long allowed[OBSPAMD_MAX_ALLOW];
static int nallowed;

typedef struct episode {
  long uid;       /* -1: a free slot */
  int64_t last;   /* monotonic ms of its last refusal */
  uint64_t count; /* refusals in this episode, the logged one included */
} episode;

static pthread_mutex_t episodes_lock = PTHREAD_MUTEX_INITIALIZER;
static episode episodes[EPISODE_SLOTS];
static int episodes_ready;

void obspamd_peers_allow(const long *uids, int n) {
  int i;

  nallowed = 0;
  for (i = 0; i < n && i < OBSPAMD_MAX_ALLOW; i++)
    allowed[nallowed++] = uids[i];
}

/* The postfix user's uid as last looked up, -1 before (atomic). */
static long postfix_uid = -1;

static int uid_allowed(uid_t uid) {
  struct passwd pw, *found = NULL;
  char buf[1024];
  int i;

  if (uid == 0 || uid == geteuid())
    return 1;
  for (i = 0; i < nallowed; i++)
    if ((uid_t)allowed[i] == uid)
      return 1;
  if (__atomic_load_n(&postfix_uid, __ATOMIC_RELAXED) == (long)uid)
    return 1;
  /* Looked up again for a uid not allowed so far rather than once at
     start: Postfix may be installed after the daemon started. Only the
     first connection of Postfix and the refused ones pay for it. */
  if (getpwnam_r("postfix", &pw, buf, sizeof(buf), &found) != 0 ||
      found == NULL)
    return 0;
  __atomic_store_n(&postfix_uid, (long)found->pw_uid, __ATOMIC_RELAXED);
  return found->pw_uid == uid;
}

/* Whether this refusal starts an episode of uid (then *previous gets the
   count of its last one, 0 when none is remembered). */
static int episode_starts(long uid, uint64_t *previous) {
  int64_t now = obspamd_now_ms();
  int i, slot = -1, oldest = 0, starts;

  pthread_mutex_lock(&episodes_lock);
  if (!episodes_ready) {
    for (i = 0; i < EPISODE_SLOTS; i++)
      episodes[i].uid = -1;
    episodes_ready = 1;
  }
  for (i = 0; i < EPISODE_SLOTS; i++) {
    if (episodes[i].uid == uid) {
      slot = i;
      break;
    }
    if (episodes[i].uid == -1 || episodes[i].last < episodes[oldest].last)
      oldest = i;
  }
  *previous = 0;
  if (slot < 0) {
    slot = oldest;
    episodes[slot].uid = uid;
    episodes[slot].count = 0;
    starts = 1;
  } else {
    starts = now - episodes[slot].last >= EPISODE_MS;
    if (starts) {
      *previous = episodes[slot].count;
      episodes[slot].count = 0;
    }
  }
  episodes[slot].last = now;
  episodes[slot].count++;
  pthread_mutex_unlock(&episodes_lock);
  return starts;
}

int obspamd_peer_allowed(int fd, const char *where) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  struct passwd pw, *found = NULL;
  char buf[1024], name[64], before[64] = "";
  uint64_t previous;

  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
      ss.ss_family != AF_UNIX)
    return 1;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
    obspamd_log(LOG_WARNING,
                "peer refused on %s: its credentials cannot be read: %s", where,
                strerror(errno));
    return 0;
  }
  if (uid_allowed(cred.uid))
    return 1;
  if (!episode_starts((long)cred.uid, &previous))
    return 0;
  if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
    obspamd__clean(name, sizeof(name), found->pw_name, 1);
  else
    snprintf(name, sizeof(name), "-");
  if (previous > 0)
    snprintf(before, sizeof(before), " (its previous episode: %llu)",
             (unsigned long long)previous);
  obspamd_log(LOG_WARNING,
              "peer refused uid=%lu user=%s pid=%ld on %s: only root, postfix, "
              "the daemon's user and --allow-user users may ask; its "
              "connections are closed unanswered and not logged again until "
              "it stops for %d s%s",
              (unsigned long)cred.uid, name, (long)cred.pid, where,
              EPISODE_MS / 1000, before);
  return 0;
}

void obspamd_warn_tcp(const char *spec) {
  obspamd_log(LOG_WARNING,
              "listening on %s over TCP: any local user (a customer's web "
              "script, say) can connect and spend any mailbox's limit; "
              "prefer a unix: socket, which only Postfix may use",
              spec);
}

int obspamd_socket_group(const char *path, long owner, char *err,
                         size_t err_size) {
  struct group gr, *found = NULL;
  char buf[4096];
  struct stat st;

  gid_t gid = (gid_t)-1;

  if (getgrnam_r("postfix", &gr, buf, sizeof(buf), &found) == 0 &&
      found != NULL)
    gid = found->gr_gid;
  /* Nothing to do in a set-group-ID directory of that group (the milter's
     under systemd, whose sandbox forbids chown altogether). */
  if (stat(path, &st) == 0 && (gid == (gid_t)-1 || st.st_gid == gid) &&
      (owner < 0 || st.st_uid == (uid_t)owner))
    return 0;
  if (chown(path, owner < 0 ? (uid_t)-1 : (uid_t)owner, gid) != 0) {
    snprintf(err, err_size,
             "cannot give %s the group postfix%s: %s (run as root, or as "
             "a member of that group)",
             path, owner >= 0 ? " and its user" : "", strerror(errno));
    return -1;
  }
  return 0;
}

/* ---- sockets from systemd ------------------------------------------------ */

int obspamd_inherited_sockets(int *fds, int max) {
  const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
  char *end;
  long count, i;
  int got = 0;

  if (pid == NULL || n == NULL)
    return 0;
  /* The variables are meant for the process systemd started, not for a
     child that inherited them. */
  if (strtol(pid, &end, 10) != (long)getpid() || *end != '\0')
    return 0;
  count = strtol(n, &end, 10);
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (*end != '\0' || count <= 0)
    return 0;
  /* sd_listen_fds(3): the sockets start at descriptor 3. */
  for (i = 0; i < count && got < max; i++) {
    int fd = 3 + (int)i, flags = fcntl(fd, F_GETFL);
    if (flags < 0)
      continue;
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fds[got++] = fd;
  }
  return got;
}

/* ---- least privilege ----------------------------------------------------- */

/* Empties the capability bounding set: once the daemon is no longer root,
   no program it runs (a set-uid one included) can get any capability. */
static int drop_bounding_set(void) {
  int cap;

  for (cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL)
        break; /* past the last capability this kernel knows */
      return -1;
    }
  }
  return 0;
}

/* Whether user (with primary group gid) may write and search dir, from
   its mode bits: the check before root is given up, while a failure can
   still be cleaned up (the sockets removed). ACLs are not read; the check
   after the change (faccessat) is exact. */
static int may_write(const struct passwd *user, gid_t gid, const char *dir) {
  gid_t groups[256];
  int n = 256, i;
  struct stat st;

  if (stat(dir, &st) != 0)
    return 0;
  if (user->pw_uid == 0)
    return 1;
  if (st.st_uid == user->pw_uid)
    return (st.st_mode & 0300) == 0300;
  if (getgrouplist(user->pw_name, gid, groups, &n) < 0)
    n = 0;
  if (st.st_gid == gid)
    return (st.st_mode & 0030) == 0030;
  for (i = 0; i < n; i++)
    if (groups[i] == st.st_gid)
      return (st.st_mode & 0030) == 0030;
  return (st.st_mode & 0003) == 0003;
}

static int state_dir_error(const char *name, const char *dir, int err) {
  obspamd_log(LOG_ERR,
              "cannot start: user %s cannot write the state directory %s "
              "(%s): the state is saved there; make it belong to that user "
              "(chown %s %s)",
              name, dir, strerror(err), name, dir);
  return -1;
}

int obspamd_become(const char *spec, const char *state_path) {
  struct passwd pw, *user = NULL;
  struct group gr, *group = NULL;
  char pbuf[4096], gbuf[4096], name[256], dir[PATH_MAX] = "";
  const char *colon = strchr(spec, ':');
  gid_t gid;

  snprintf(name, sizeof(name), "%.*s",
           (int)(colon != NULL ? colon - spec : (ptrdiff_t)strlen(spec)), spec);
  if (getpwnam_r(name, &pw, pbuf, sizeof(pbuf), &user) != 0 || user == NULL) {
    obspamd_log(LOG_ERR, "cannot start: --user %s: no such user", spec);
    return -1;
  }
  gid = user->pw_gid;
  if (colon != NULL) {
    if (getgrnam_r(colon + 1, &gr, gbuf, sizeof(gbuf), &group) != 0 ||
        group == NULL) {
      obspamd_log(LOG_ERR, "cannot start: --user %s: no such group '%s'", spec,
                  colon + 1);
      return -1;
    }
    gid = group->gr_gid;
  }
  if (state_path != NULL) {
    obspamd__dir_of(state_path, dir, sizeof(dir));
    if (!may_write(user, gid, dir))
      return state_dir_error(user->pw_name, dir, EACCES);
  }
  if (geteuid() != user->pw_uid || getegid() != gid) {
    if (geteuid() != 0) {
      obspamd_log(LOG_ERR,
                  "cannot start: --user %s: only root can become another "
                  "user (running as uid %lu)",
                  spec, (unsigned long)geteuid());
      return -1;
    }
    if (drop_bounding_set() != 0 || initgroups(user->pw_name, gid) != 0 ||
        setgid(gid) != 0 || setuid(user->pw_uid) != 0) {
      obspamd_log(LOG_ERR, "cannot start: --user %s: %s", spec,
                  strerror(errno));
      return -1;
    }
    /* setuid from root to another user drops every capability; a
       process that could still become root again is not what was
       asked for. */
    if (user->pw_uid != 0 && setuid(0) == 0) {
      obspamd_log(LOG_ERR, "cannot start: --user %s: root could be regained",
                  spec);
      return -1;
    }
  }
  if (state_path != NULL &&
      faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
    return state_dir_error(user->pw_name, dir, errno);
  obspamd_log(LOG_INFO, "running as user %s (uid %lu, gid %lu)", user->pw_name,
              (unsigned long)user->pw_uid, (unsigned long)gid);
  return 0;
}
