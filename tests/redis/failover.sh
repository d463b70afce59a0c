#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# failover.sh SENTINEL_PORT REPLICA_PORT: asks the sentinel for a failover
# and waits (at most 20 s) until it names the replica as the master and the
# replica says it is one.
set -euo pipefail
sp=$1 rp=$2
# The sentinel promotes only a replica it has seen in good health; until
# then it answers NOGOODSLAVE: ask again for up to 30 s.
ok=
for _ in $(seq 1 300); do
  if [[ $(redis-cli -p "$sp" SENTINEL failover mymaster 2>&1) == OK ]]; then
    ok=1
    break
  fi
  sleep 0.1
done
[[ -n $ok ]] || { echo "the sentinel refused to fail over for 30 s" >&2; exit 1; }
# While the replica turns into a master it may reset a connection
# ("Connection reset by peer"): that is an answer of "not yet", asked
# again, not a failure.
for _ in $(seq 1 200); do
  port=$(redis-cli -p "$sp" SENTINEL get-master-addr-by-name mymaster 2>/dev/null |
    tail -n 1) || port=
  role=$(redis-cli -p "$rp" ROLE 2>/dev/null | head -n 1) || role=
  if [[ $port == "$rp" && $role == master ]]; then
    echo "new master: 127.0.0.1:$rp"
    exit 0
  fi
  sleep 0.1
done
echo "no failover within 20 s" >&2
exit 1
