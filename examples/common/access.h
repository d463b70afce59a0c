/* SPDX-License-Identifier: MIT */
/* Who may connect to a daemon's unix: sockets, the sockets systemd hands
   over, and the change of user (access.c). */
#ifndef OBSPAMD_ACCESS_H
#define OBSPAMD_ACCESS_H

#include <stddef.h>

/* On a shared host every customer's scripts run as a local user, and a
   local user who can ask the daemon can spend any mailbox's limit. So
   unix: listeners answer root, the "postfix" user (when it exists), the
   daemon's own user and the users named with --allow-user, checked by the
   peer's credentials (SO_PEERCRED); TCP listeners answer anyone who can
   reach them and are only opened when asked for. */

/* The users allowed besides root, postfix and the daemon's own: uids
   from --allow-user (o->allow). Call before the first check. */
void obspamd_peers_allow(const long *uids, int n);
/* Whether the peer of an accepted unix: connection may ask: 1 yes, 0 no
   (the caller closes it without a byte). A refused user is logged once
   per episode, which ends after a minute without a refusal of it:
     peer refused uid=1001 user=web1 on unix:/var/spool/postfix/private/...
   where names the listener. Any other socket (TCP) is 1. Thread-safe. */
int obspamd_peer_allowed(int fd, const char *where);
/* The text of the warning a daemon logs at start for a TCP listener. */
void obspamd_warn_tcp(const char *spec);
/* Gives the socket file path the group "postfix" (when that group
   exists), so that with a mode of 0660 Postfix may connect and other
   users may not, and the owner uid (the --user the daemon becomes, which
   must reach its own socket; -1: unchanged). Returns 0, or -1 with a
   reason in err. */
int obspamd_socket_group(const char *path, long owner, char *err,
                         size_t err_size);

/* Sockets handed over by systemd (socket activation, sd_listen_fds(3)):
   stores at most max descriptors, made non-blocking and close-on-exec,
   and returns their number (0 when none were passed). The LISTEN_*
   variables are removed, so that the programs the daemon runs do not
   take the sockets for theirs. */
int obspamd_inherited_sockets(int *fds, int max);

/* ---- least privilege ------------------------------------------------------
 */

/* --user USER[:GROUP]: after the sockets are bound and the files opened,
   the daemon becomes USER (its group, or GROUP, and USER's other groups),
   having first emptied its capability bounding set, so that nothing it
   runs later can regain root. The directory of state_path (NULL: none)
   must then be writable: the state is saved by renaming a new file into
   it. Run as USER already, it only checks that directory. Returns 0, or
   -1 after logging why ("cannot start: ..."). */
int obspamd_become(const char *spec, const char *state_path);

#endif
