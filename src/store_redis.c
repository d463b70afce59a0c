/* SPDX-License-Identifier: MIT */
/* The shared counter store in Redis.

   Several mail servers that name the same Redis count every object once,
   whichever server a message goes through. The decision logic is the one
   of store_mem.c, run by Redis itself as one Lua script per decision (one
   round trip, atomic), so two servers can never both take the last slot.

   Keys, all starting with the configured prefix ("obspam:" by default),
   with the owning subscription as a hash tag so that everything one
   decision touches lives in one slot:

     P{sub:S}:KIND:NAME:w   hash "s<minute>" sent, "r<minute>" refused,
                            "x<minute>" over the limit: the minutes of the
                            hour window; "m<tick>" sent in the 5-second
                            tick (t div 5) of the minute window; older
                            buckets are deleted; TTL a little over the hour
     P{sub:S}:KIND:NAME:h   hash "<hour>:s|r|x|f|l|w|fw|ls" sent, refused,
                            over the limit, first and last attempt over
                            the limit, the window (seconds) of the last,
                            forwards (of sent) and mailing-list
                            deliveries (exempt or charged; from 1.4), of
                            each clock hour, "lr" the last refusal, "rt"
                            the last reset and "rb" what its hour had
                            sent before it; the day window sums the last
                            24 hours' "s" from the hour of "rt" on, less
                            "rb"; TTL the retention, at least a day, and
                            an hour
     P idx:<hour>           set of "KIND\tS\tNAME" active in that hour, for
                            reports; TTL the retention
     P scripts              hash script path -> subscription last charged

   KIND is sub, dom, mbx or scr (a script path, under the subscription its
   message was charged to). Keys of 1.1 to 1.3.0 have the same layout
   without the "m" and ":w" fields, so the hour and day windows go on
   from them. The index keys are written in the same pipeline
   as the script, not by it, so the script itself only touches one slot.

   When Redis does not answer within the timeout (or is down), the decision
   falls back to the engine's in-memory store, or fails with
   OBSPAM_EUNAVAIL; Redis is tried again at most once a second. Snapshots,
   notices and carried counters are those of the local store: Redis keeps
   its own data, by name, across reloads and restarts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_uri.h"

#ifdef OBSPAM_WITH_REDIS

#include <hiredis.h>

#include "tree.h"

#define RETRY_MS 1000   /* how often a down Redis is tried again */
#define WINDOW_TTL 3720 /* the window and two minutes of clock skew */
#define KEY_MAX 1800    /* prefix, tag, kind, a script path */

/* The first clock hour (hour number, t div 3600) that the day window
   counts and what that hour had sent before, from the "rt" and "rb"
   fields of a history hash (HMGET values, false when absent): the hour
   of the last reset (obspam_reset) and what it had sent before the
   reset, or no floor (hour 0, nothing) without a reset. Shared by the
   decision and the read, so that both count the same day. */
#define DAY_FLOOR                                                              \
  "local function day_floor(rt,rb)\n"                                          \
  "  rt=tonumber(rt)\n"                                                        \
  "  if not rt then return 0,0 end\n"                                          \
  "  return math.floor(rt/3600),tonumber(rb) or 0\n"                           \
  "end\n"

/* The check-and-charge of store_mem.c (charge_locked), on the keys of the
   charged objects: each object's count and wait in each window (minute,
   hour, day), then, unless dry, the record of the answer. Which object and
   window a refusal names is decided again in C by obspam__judge from the
   waits returned; the script names them the same way (judge.c's rule)
   only to record the window of each refusal. KEYS: the n window hashes,
   the n history hashes, then the script's history hash when ARGV[8] is
   1. ARGV: n, t, c, forbid, probe, dry, retention hours, script, window
   TTL, over the recipients cap, then the n objects' limits (minute, hour,
   day each), then the charge's marks (store.h, OBSPAM__MARK_*: an
   accepted forward adds c to "<hour>:fw", a list delivery to
   "<hour>:ls"). Returns the counts of the 3 objects (minute, hour, day
   each; 0 past n), then their waits the same way. */
static const char lua_charge[] =
    "local n=tonumber(ARGV[1]) local t=tonumber(ARGV[2])\n"
    "local c=tonumber(ARGV[3]) local forbid=ARGV[4]=='1'\n"
    "local probe=ARGV[5]=='1' local dry=ARGV[6]=='1'\n"
    "local ret=tonumber(ARGV[7]) local script=ARGV[8]=='1'\n"
    "local wttl=tonumber(ARGV[9]) local overcap=ARGV[10]=='1'\n"
    "local marks=tonumber(ARGV[11+3*n]) or 0\n"
    /* The day window reads the history's hours: keep 24 of them whatever
       the retention. */
    "local keep=math.max(ret,24)\n"
    "local tick=math.floor(t/5) local minute=math.floor(t/60)\n"
    "local hnum=math.floor(t/3600) local hour=hnum*3600\n"
    "local secs={60,3600,86400}\n"
    /* wait_of() of store_mem.c, for a message that does not fit: over a
       window of nb buckets of size seconds whose current one is cur, b
       holding sent, it fits once the buckets before k have left, at the
       time bucket k + nb - 1 begins. The buckets are gathered only then:
       a message that fits costs one pass over the window hash. */
    "local function wait_of(b,cur,nb,size,sent,limit)\n"
    "  if c>limit then return -1 end\n"
    "  local k=cur-nb+1\n"
    "  while sent+c>limit do sent=sent-(b[k] or 0) k=k+1 end\n"
    "  return (k+nb-1)*size-t\n"
    "end\n"
    "local function exceeds(sent,limit) return limit>=0 and sent+c>limit end\n"
    "local function buckets(all,letter)\n"
    "  local b={}\n"
    "  for j=1,#all,2 do\n"
    "    local f=all[j]\n"
    "    if string.byte(f,1)==letter then\n"
    "      b[tonumber(string.sub(f,2))]=tonumber(all[j+1]) end\n"
    "  end\n"
    "  return b\n"
    "end\n"
    /* longer() and the naming of judge.c: each object's windows from the
       longest, then its cap (the lowest object's), the first of the
       longest waits keeping the name, -1 the longest of all. over[i]:
       the attempt went over the ith object's own limit; win[i]: the
       window (seconds) recorded for it. */
    DAY_FLOOR "local function longer(a,b)\n"
    "  if a==-1 then return b~=-1 end\n"
    "  return b~=-1 and a>b\n"
    "end\n"
    "local count,wait,over,win={},{},{},{}\n"
    "local refuser,retry=0,0\n"
    "for i=1,n do\n"
    "  local lim={} for w=1,3 do lim[w]=tonumber(ARGV[7+3*i+w]) end\n"
    /* The window hash: 'm' 5-second buckets of the minute window, 's'
       minutes of the hour; older buckets are deleted. */
    "  local all=redis.call('HGETALL',KEYS[i])\n"
    "  local stale,bd,sm,sh,sd={},{},0,0,0\n"
    "  for j=1,#all,2 do\n"
    "    local f=all[j] local w=string.byte(f,1)\n"
    "    local k=tonumber(string.sub(f,2))\n"
    "    if w==109 then\n"
    "      if k<=tick-12 then stale[#stale+1]=f else sm=sm+all[j+1] end\n"
    "    elseif k<=minute-60 then stale[#stale+1]=f\n"
    "    elseif w==115 then sh=sh+all[j+1] end\n"
    "  end\n"
    "  if not dry and #stale>0 then\n"
    "    redis.call('HDEL',KEYS[i],unpack(stale)) end\n"
    /* The day: the clock hours of the history, read only when the day
       has a limit (its count is reported only when it is named). A reset
       (rt, rb) starts it at its hour, less what that hour had sent
       before it. */
    "  if lim[3]>=0 then\n"
    "    local f={}\n"
    "    for h=hnum-23,hnum do f[#f+1]=string.format('%d:s',h*3600) end\n"
    "    f[25]='rt' f[26]='rb'\n"
    "    local got=redis.call('HMGET',KEYS[n+i],unpack(f))\n"
    "    local rh,rb=day_floor(got[25],got[26])\n"
    "    for j=1,24 do\n"
    "      local h=hnum-24+j local v=tonumber(got[j])\n"
    "      if v and h>=rh then\n"
    "        if h==rh then v=v-rb end\n"
    "        bd[h]=v sd=sd+v\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  count[i]={sm,sh,sd}\n"
    "  wait[i]={0,0,0}\n"
    "  if exceeds(sm,lim[1]) then\n"
    "    wait[i][1]=wait_of(buckets(all,109),tick,12,5,sm,lim[1]) end\n"
    "  if exceeds(sh,lim[2]) then\n"
    "    wait[i][2]=wait_of(buckets(all,115),minute,60,60,sh,lim[2]) end\n"
    "  if exceeds(sd,lim[3]) then\n"
    "    wait[i][3]=wait_of(bd,hnum,24,3600,sd,lim[3]) end\n"
    "  local best,bw=0,0\n"
    "  for w=3,1,-1 do\n"
    "    if wait[i][w]~=0 and (best==0 or longer(wait[i][w],best)) then\n"
    "      best=wait[i][w] bw=secs[w] end\n"
    "  end\n"
    "  if i==n and overcap and (best==0 or longer(-1,best)) then\n"
    "    best=-1 bw=0 end\n"
    "  over[i]=best~=0 win[i]=bw\n"
    "  if best~=0 and (refuser==0 or longer(best,retry)) then\n"
    "    refuser=i retry=best end\n"
    "end\n"
    "if forbid then\n"
    "  refuser=1\n"
    "  for i=1,n do over[i]=i==1 win[i]=0 end\n"
    "end\n"
    /* The record: x counts an attempt over the object's own limit, w
       (its window in seconds) marks one the report lists with its first
       and last time; for a script, every refusal, with no window (a
       script has no limit of its own). */
    "if not dry then\n"
    "  local hs=string.format('%d',hour) local ts=string.format('%d',t)\n"
    "  local function hist(key,refd,x,w)\n"
    "    if redis.call('HEXISTS',key,hs..':s')==0 and\n"
    "      redis.call('HEXISTS',key,hs..':r')==0 then\n"
    "      local cutoff=hour-(keep-1)*3600 local old,live={},false\n"
    "      for _,f in ipairs(redis.call('HKEYS',key)) do\n"
    "        local h=tonumber(string.match(f,'^(%d+):'))\n"
    "        if h and h<cutoff then old[#old+1]=f end\n"
    "        if h and h>=cutoff then live=true end\n"
    "      end\n"
    "      if #old>0 then redis.call('HDEL',key,unpack(old)) end\n"
    /* The in-memory store forgets a history, its last reset with it,
       once its newest hour has left the retention: so does this one. */
    "      local rt=tonumber(redis.call('HGET',key,'rt'))\n"
    "      if rt and not live and rt-rt%3600<cutoff then\n"
    "        redis.call('HDEL',key,'rt','rb') end\n"
    "    end\n"
    "    if refd then\n"
    "      redis.call('HINCRBY',key,hs..':r',1)\n"
    "      redis.call('HSET',key,'lr',ts)\n"
    "      if x then redis.call('HINCRBY',key,hs..':x',1) end\n"
    "      if w then\n"
    "        redis.call('HSETNX',key,hs..':f',ts)\n"
    "        redis.call('HSET',key,hs..':l',ts,hs..':w',w)\n"
    "      end\n"
    "    else redis.call('HINCRBY',key,hs..':s',c) end\n"
    "    redis.call('EXPIRE',key,keep*3600+3600)\n"
    "  end\n"
    "  local ms=string.format('%d',minute)\n"
    "  local ks=string.format('%d',tick)\n"
    "  if refuser>0 then\n"
    "    for i=1,n do\n"
    "      redis.call('HINCRBY',KEYS[i],'r'..ms,1)\n"
    "      if over[i] then\n"
    "        redis.call('HINCRBY',KEYS[i],'x'..ms,1)\n"
    "        hist(KEYS[n+i],true,true,win[i])\n"
    "      else hist(KEYS[n+i],true,false,nil) end\n"
    "    end\n"
    "  elseif not probe then\n"
    "    for i=1,n do\n"
    "      redis.call('HINCRBY',KEYS[i],'s'..ms,c)\n"
    "      redis.call('HINCRBY',KEYS[i],'m'..ks,c)\n"
    "      hist(KEYS[n+i],false)\n"
    "      if marks%2==1 then redis.call('HINCRBY',KEYS[n+i],hs..':fw',c) end\n"
    "      if marks%4>=2 then redis.call('HINCRBY',KEYS[n+i],hs..':ls',c) end\n"
    "    end\n"
    "  end\n"
    "  for i=1,n do redis.call('EXPIRE',KEYS[i],wttl) end\n"
    "  if script and (refuser>0 or not probe) then\n"
    "    hist(KEYS[2*n+1],refuser>0,false,0)\n"
    "  end\n"
    "end\n"
    "local out={}\n"
    "for _,v in ipairs({count,wait}) do\n"
    "  for i=1,3 do for w=1,3 do out[#out+1]=v[i] and v[i][w] or 0 end end\n"
    "end\n"
    "return out\n";

/* store_mem.c's mem_read. KEYS: window hash, history hash. ARGV: now,
   retention hours. Returns count, refused, refused_total, last_refused,
   exceeded, exceeded_total, count_day, count_minute, last_reset, and the
   clock hour's forwards and list deliveries. The day is
   counted whatever the retention, as the decision counts it. */
static const char lua_read[] =
    "local now=tonumber(ARGV[1]) local ret=tonumber(ARGV[2])\n"
    /* day_floor() for the day window. */
    DAY_FLOOR "local tick=math.floor(now/5) local minute=math.floor(now/60)\n"
    "local sent,refd,exc,sm=0,0,0,0\n"
    "local all=redis.call('HGETALL',KEYS[1])\n"
    "for j=1,#all,2 do\n"
    "  local f=all[j] local k=tonumber(string.sub(f,2))\n"
    "  local v=tonumber(all[j+1]) local w=string.sub(f,1,1)\n"
    "  if w=='m' then\n"
    "    if k>tick-12 then sm=sm+v end\n"
    "  elseif k>minute-60 then\n"
    "    if w=='s' then sent=sent+v\n"
    "    elseif w=='r' then refd=refd+v\n"
    "    elseif w=='x' then exc=exc+v end\n"
    "  end\n"
    "end\n"
    "local hour=now-now%3600 local cutoff=hour-(ret-1)*3600\n"
    "local total,xtotal,day,lr,rt=0,0,0,0,0\n"
    "all=redis.call('HGETALL',KEYS[2])\n"
    "local fl=redis.call('HMGET',KEYS[2],'rt','rb')\n"
    "local rh,rb=day_floor(fl[1],fl[2])\n"
    "for j=1,#all,2 do\n"
    "  local h,w=string.match(all[j],'^(%d+):(%a)$')\n"
    "  if h then\n"
    "    h=tonumber(h)\n"
    "    local v=tonumber(all[j+1])\n"
    "    if h>=cutoff then\n"
    "      if w=='r' then total=total+v\n"
    "      elseif w=='x' then xtotal=xtotal+v end\n"
    "    end\n"
    "    if w=='s' and h>hour-86400 and h>=rh*3600 then\n"
    "      day=day+v if h==rh*3600 then day=day-rb end\n"
    "    end\n"
    "  end\n"
    "  if all[j]=='lr' then local v=tonumber(all[j+1])\n"
    "    if v-v%3600>=cutoff then lr=v end end\n"
    "end\n"
    /* The last reset, as long as the in-memory store keeps the
    object's history: while its newest hour (the reset's own
    among them) is within the retention, at least a day. */
    "local newest=rh*3600\n"
    "for j=1,#all,2 do\n"
    "  local h=tonumber(string.match(all[j],'^(%d+):'))\n"
    "  if h and h>newest then newest=h end\n"
    "end\n"
    "if fl[1] and newest>=hour-(math.max(ret,24)-1)*3600 then\n"
    "  rt=tonumber(fl[1]) end\n"
    /* The clock hour's forwards and list deliveries. */
    "local hs=string.format('%d',hour)\n"
    "local fl2=redis.call('HMGET',KEYS[2],hs..':fw',hs..':ls')\n"
    "return {sent,refd,total,lr,exc,xtotal,day,sm,rt,\n"
    "  tonumber(fl2[1]) or 0,tonumber(fl2[2]) or 0}\n";

/* store_mem.c's reset_locked: the object's windows empty (its window
   hash goes), and its history hash keeps every hour but records the
   time of the reset ("rt") and what the reset's hour had sent before
   it ("rb"), the floor of the day window. KEYS: window hash, history
   hash. ARGV: t, retention hours. */
static const char lua_reset[] =
    "local t=tonumber(ARGV[1]) local keep=math.max(tonumber(ARGV[2]),24)\n"
    "local hs=string.format('%d:s',t-t%3600)\n"
    "redis.call('DEL',KEYS[1])\n"
    "local b=tonumber(redis.call('HGET',KEYS[2],hs)) or 0\n"
    "redis.call('HSET',KEYS[2],'rt',ARGV[1],'rb',b)\n"
    "redis.call('EXPIRE',KEYS[2],keep*3600+3600)\n"
    "return 1\n";

typedef struct redis_store {
  obspam__store base;
  obspam__store *local;
  char *uri, *prefix;
  obspam__store_addr addr;
  pthread_mutex_t lock; /* the connection and everything below */
  redisContext *c;
  char sha_charge[41], sha_read[41], sha_reset[41];
  int up;              /* the last attempt worked (1 before the first) */
  int64_t next_try_ms; /* while down: when to try again */
  int64_t episodes, fallbacks;
  int64_t timeout_ms;
  int64_t newest; /* the newest message time seen here */
} redis_store;

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static redisContext *dial(const obspam__endpoint *ep, int64_t ms) {
  struct timeval tv;
  redisContext *c;

  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  c = redisConnectWithTimeout(ep->host, ep->port, tv);
  if (c == NULL)
    return NULL;
  if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
    redisFree(c);
    return NULL;
  }
  return c;
}

/* Runs one command and returns its reply when it is of type want. */
static redisReply *call(redisContext *c, int want, int argc, const char **argv,
                        const size_t *len) {
  redisReply *rp = redisCommandArgv(c, argc, argv, len);

  if (rp != NULL && (int)rp->type != want) {
    freeReplyObject(rp);
    return NULL;
  }
  return rp;
}

static int load_script(redisContext *c, const char *text, char sha[41]) {
  const char *argv[] = {"SCRIPT", "LOAD", text};
  size_t len[] = {6, 4, strlen(text)};
  redisReply *rp = call(c, REDIS_REPLY_STRING, 3, argv, len);

  if (rp == NULL || rp->len != 40) {
    if (rp != NULL)
      freeReplyObject(rp);
    return -1;
  }
  memcpy(sha, rp->str, 40);
  sha[40] = '\0';
  freeReplyObject(rp);
  return 0;
}

/* The master's address, from the first sentinel that knows it. */
static int ask_sentinels(redis_store *r, obspam__endpoint *master) {
  int i;

  for (i = 0; i < r->addr.n; i++) {
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name",
                          r->addr.master};
    size_t len[] = {8, 23, strlen(r->addr.master)};
    redisContext *c = dial(&r->addr.ep[i], r->timeout_ms);
    redisReply *rp;
    int ok = 0;

    if (c == NULL)
      continue;
    rp = call(c, REDIS_REPLY_ARRAY, 3, argv, len);
    if (rp != NULL && rp->elements == 2 &&
        rp->element[0]->type == REDIS_REPLY_STRING &&
        rp->element[1]->type == REDIS_REPLY_STRING &&
        rp->element[0]->len < sizeof(master->host)) {
      memcpy(master->host, rp->element[0]->str, rp->element[0]->len);
      master->host[rp->element[0]->len] = '\0';
      master->port = atoi(rp->element[1]->str);
      ok = master->port > 0;
    }
    if (rp != NULL)
      freeReplyObject(rp);
    redisFree(c);
    if (ok)
      return 0;
  }
  return -1;
}

/* Whether c is connected to a master (a demoted one refuses writes). */
static int is_master(redisContext *c) {
  const char *argv[] = {"ROLE"};
  size_t len[] = {4};
  redisReply *rp = call(c, REDIS_REPLY_ARRAY, 1, argv, len);
  int ok;

  ok = rp != NULL && rp->elements > 0 &&
       rp->element[0]->type == REDIS_REPLY_STRING &&
       strcmp(rp->element[0]->str, "master") == 0;
  if (rp != NULL)
    freeReplyObject(rp);
  return ok;
}

static int connect_master(redis_store *r) {
  obspam__endpoint master;
  redisContext *c;

  if (r->addr.sentinel) {
    if (ask_sentinels(r, &master) != 0)
      return -1;
  } else {
    master = r->addr.ep[0];
  }
  c = dial(&master, r->timeout_ms);
  if (c == NULL)
    return -1;
  if (r->addr.sentinel && !is_master(c))
    goto fail;
  if (r->addr.db != 0) {
    char db[24];
    const char *argv[] = {"SELECT", db};
    size_t len[2];
    redisReply *rp;

    snprintf(db, sizeof(db), "%ld", r->addr.db);
    len[0] = 6;
    len[1] = strlen(db);
    rp = call(c, REDIS_REPLY_STATUS, 2, argv, len);
    if (rp == NULL)
      goto fail;
    freeReplyObject(rp);
  }
  if (load_script(c, lua_charge, r->sha_charge) != 0 ||
      load_script(c, lua_read, r->sha_read) != 0 ||
      load_script(c, lua_reset, r->sha_reset) != 0)
    goto fail;
  r->c = c;
  return 0;
fail:
  redisFree(c);
  return -1;
}

/* Redis stopped answering: count an episode when it was up. */
static void mark_down(redis_store *r) {
  if (r->c != NULL) {
    redisFree(r->c);
    r->c = NULL;
  }
  if (r->up)
    r->episodes++;
  r->up = 0;
  r->next_try_ms = mono_ms() + RETRY_MS;
}

/* A connection, unless Redis is down and it is not time to try again. */
static int ensure(redis_store *r) {
  if (r->c != NULL)
    return 0;
  if (!r->up && mono_ms() < r->next_try_ms)
    return -1;
  if (connect_master(r) == 0) {
    r->up = 1;
    return 0;
  }
  mark_down(r);
  return -1;
}

/* A batch of commands sent in one write, their replies read together. */
#define ARGS_MAX 40
typedef struct cmd {
  int argc;
  const char *argv[ARGS_MAX];
  size_t len[ARGS_MAX];
} cmd;

static void arg(cmd *c, const char *s, size_t n) {
  c->argv[c->argc] = s;
  c->len[c->argc++] = n;
}

static void args(cmd *c, const char *s) { arg(c, s, strlen(s)); }

static int reply_is(const redisReply *rp, const char *prefix) {
  return rp->type == REDIS_REPLY_ERROR &&
         strncmp(rp->str, prefix, strlen(prefix)) == 0;
}

/* Sends the n commands and reads their replies into rp. A lost connection,
   a demoted master or an unknown script is retried once on a fresh
   connection (a failover, a restarted Redis). Returns 0, or -1 with
   Redis marked down and no reply kept. */
static int pipeline(redis_store *r, cmd *cmds, int n, redisReply **rp) {
  int attempt, i, again;

  for (attempt = 0; attempt < 2; attempt++) {
    if (ensure(r) != 0)
      return -1;
    for (i = 0; i < n; i++)
      redisAppendCommandArgv(r->c, cmds[i].argc, cmds[i].argv, cmds[i].len);
    again = 0;
    for (i = 0; i < n; i++) {
      void *v = NULL;

      rp[i] = NULL;
      if (redisGetReply(r->c, &v) != REDIS_OK || v == NULL) {
        again = 1;
        break;
      }
      rp[i] = v;
      if (reply_is(rp[i], "READONLY") || reply_is(rp[i], "NOSCRIPT") ||
          reply_is(rp[i], "LOADING") || reply_is(rp[i], "MASTERDOWN"))
        again = 1;
    }
    if (!again)
      return 0;
    while (i-- > 0)
      if (rp[i] != NULL)
        freeReplyObject(rp[i]);
    redisFree(r->c);
    r->c = NULL;
  }
  mark_down(r);
  return -1;
}

static void free_replies(redisReply **rp, int n) {
  int i;

  for (i = 0; i < n; i++)
    if (rp[i] != NULL)
      freeReplyObject(rp[i]);
}

static const char *kind_word(int kind) {
  static const char *const w[] = {"srv", "pln", "sub", "dom", "mbx", "scr"};

  return kind >= 0 && kind <= OBSPAM_SCRIPT ? w[kind] : "unk";
}

/* P{sub:S}:KIND:NAME:suffix */
static size_t key_of(const redis_store *r, char *buf, const char *sub, int kind,
                     const char *name, size_t len, char suffix) {
  int n = snprintf(buf, KEY_MAX, "%s{sub:%s}:%s:%.*s:%c", r->prefix, sub,
                   kind_word(kind), (int)len, name, suffix);

  return n < 0 ? 0 : (size_t)n >= KEY_MAX ? KEY_MAX - 1 : (size_t)n;
}

static const char *sub_of(const obspam__obj *o) {
  const obspam__sub *s = obspam__owner(o);

  return s != NULL ? s->obj.name : "";
}

/* The index entry of an object: "KIND\tS\tNAME". */
static size_t member_of(char *buf, const char *sub, int kind, const char *name,
                        size_t len) {
  int n = snprintf(buf, KEY_MAX, "%d\t%s\t%.*s", kind, sub, (int)len, name);

  return n < 0 ? 0 : (size_t)n >= KEY_MAX ? KEY_MAX - 1 : (size_t)n;
}

static int64_t int_of(const redisReply *rp) {
  if (rp->type == REDIS_REPLY_INTEGER)
    return (int64_t)rp->integer;
  if (rp->type == REDIS_REPLY_STRING)
    return strtoll(rp->str, NULL, 10);
  return 0;
}

/* The charge on Redis; -1 when Redis did not answer as it should. */
static int redis_charge(redis_store *r, obspam__charge *ch) {
  char keys[7][KEY_MAX], members[4][KEY_MAX], nums[16][24], hourkey[KEY_MAX];
  char lims[3][OBSPAM__WINDOWS][24];
  size_t klen[7], mlen[4];
  cmd cmds[4];
  redisReply *rp[4];
  const char *sub = sub_of(ch->obj[0]);
  int64_t hour = ch->t - ch->t % 3600;
  int i, w, nk = 0, ncmd = 1, has_script = ch->script != NULL && !ch->dry;
  const redisReply *res;

  for (i = 0; i < 2 * ch->n; i++, nk++) {
    const obspam__obj *o = ch->obj[i % ch->n];

    klen[nk] = key_of(r, keys[nk], sub, o->kind, o->name, o->len,
                      i < ch->n ? 'w' : 'h');
  }
  if (has_script) {
    klen[nk] = key_of(r, keys[nk], sub, OBSPAM_SCRIPT, ch->script,
                      ch->script_len, 'h');
    nk++;
  }

  memset(cmds, 0, sizeof(cmds));
  args(&cmds[0], "EVALSHA");
  arg(&cmds[0], r->sha_charge, 40); /* filled in when connecting */
  snprintf(nums[0], sizeof(nums[0]), "%d", nk);
  args(&cmds[0], nums[0]);
  for (i = 0; i < nk; i++)
    arg(&cmds[0], keys[i], klen[i]);
  snprintf(nums[1], sizeof(nums[1]), "%d", ch->n);
  snprintf(nums[2], sizeof(nums[2]), "%lld", (long long)ch->t);
  snprintf(nums[3], sizeof(nums[3]), "%lld", (long long)ch->c);
  snprintf(nums[4], sizeof(nums[4]), "%lld", (long long)ch->retention);
  snprintf(nums[5], sizeof(nums[5]), "%d", WINDOW_TTL);
  args(&cmds[0], nums[1]);
  args(&cmds[0], nums[2]);
  args(&cmds[0], nums[3]);
  args(&cmds[0], ch->forbid ? "1" : "0");
  args(&cmds[0], ch->probe ? "1" : "0");
  args(&cmds[0], ch->dry ? "1" : "0");
  args(&cmds[0], nums[4]);
  args(&cmds[0], has_script ? "1" : "0");
  args(&cmds[0], nums[5]);
  args(&cmds[0], ch->over_cap ? "1" : "0");
  for (i = 0; i < ch->n; i++)
    for (w = 0; w < OBSPAM__WINDOWS; w++) {
      snprintf(lims[i][w], sizeof(lims[i][w]), "%lld",
               (long long)(ch->limit[i][w] < 0 ? -1 : ch->limit[i][w]));
      args(&cmds[0], lims[i][w]);
    }
  snprintf(nums[6], sizeof(nums[6]), "%d", ch->marks);
  args(&cmds[0], nums[6]);
  if (!ch->dry) {
    /* The index for reports, in the same round trip. */
    snprintf(hourkey, sizeof(hourkey), "%sidx:%lld", r->prefix,
             (long long)hour);
    args(&cmds[1], "SADD");
    args(&cmds[1], hourkey);
    for (i = 0; i < ch->n; i++) {
      mlen[i] = member_of(members[i], sub, ch->obj[i]->kind, ch->obj[i]->name,
                          ch->obj[i]->len);
      arg(&cmds[1], members[i], mlen[i]);
    }
    if (has_script) {
      mlen[3] =
          member_of(members[3], sub, OBSPAM_SCRIPT, ch->script, ch->script_len);
      arg(&cmds[1], members[3], mlen[3]);
    }
    snprintf(nums[10], sizeof(nums[10]), "%lld",
             (long long)ch->retention * 3600 + 3600);
    args(&cmds[2], "EXPIRE");
    args(&cmds[2], hourkey);
    args(&cmds[2], nums[10]);
    ncmd = 3;
    if (has_script) {
      snprintf(keys[6], KEY_MAX, "%sscripts", r->prefix);
      args(&cmds[3], "HSET");
      args(&cmds[3], keys[6]);
      arg(&cmds[3], ch->script, ch->script_len);
      args(&cmds[3], sub);
      ncmd = 4;
    }
  }
  if (pipeline(r, cmds, ncmd, rp) != 0)
    return -1;
  res = rp[0];
  if (res->type != REDIS_REPLY_ARRAY ||
      res->elements != 2 * 3 * OBSPAM__WINDOWS) {
    free_replies(rp, ncmd);
    mark_down(r);
    return -1;
  }
  for (i = 0; i < ch->n; i++) {
    for (w = 0; w < OBSPAM__WINDOWS; w++) {
      ch->count[i][w] = int_of(res->element[i * OBSPAM__WINDOWS + w]);
      ch->wait[i][w] = int_of(res->element[(3 + i) * OBSPAM__WINDOWS + w]);
    }
    /* Notices come from the local store only (see the README). */
    ch->first_exceeded[i] = 0;
    ch->period_sent[i] = ch->period_refused[i] = 0;
  }
  obspam__judge(ch);
  ch->period_start = ch->t - ch->t % ch->period;
  free_replies(rp, ncmd);
  return 0;
}

/* An exempt mailing-list delivery (ch->listed) on Redis, under r->lock:
   no decision to make, so no script; each object's history counts it in
   "<hour>:ls", and the index of the hour lists the objects for reports.
   0, or -1 when Redis did not answer. */
static int redis_listed(redis_store *r, const obspam__charge *ch) {
  char keys[3][KEY_MAX], members[3][KEY_MAX], field[32], cs[24], ttl[24];
  char hourkey[KEY_MAX];
  const char *sub = sub_of(ch->obj[0]);
  int64_t hour = ch->t - ch->t % 3600;
  int64_t keep = ch->retention > 24 ? ch->retention : 24;
  cmd cmds[8];
  redisReply *rp[8];
  int i, ncmd = 0, ok = 1;

  memset(cmds, 0, sizeof(cmds));
  snprintf(field, sizeof(field), "%lld:ls", (long long)hour);
  snprintf(cs, sizeof(cs), "%lld", (long long)ch->c);
  snprintf(ttl, sizeof(ttl), "%lld", (long long)(keep * 3600 + 3600));
  for (i = 0; i < ch->n; i++) {
    const obspam__obj *o = ch->obj[i];
    size_t klen = key_of(r, keys[i], sub, o->kind, o->name, o->len, 'h');

    args(&cmds[ncmd], "HINCRBY");
    arg(&cmds[ncmd], keys[i], klen);
    args(&cmds[ncmd], field);
    args(&cmds[ncmd++], cs);
    args(&cmds[ncmd], "EXPIRE");
    arg(&cmds[ncmd], keys[i], klen);
    args(&cmds[ncmd++], ttl);
  }
  snprintf(hourkey, sizeof(hourkey), "%sidx:%lld", r->prefix, (long long)hour);
  args(&cmds[ncmd], "SADD");
  args(&cmds[ncmd], hourkey);
  for (i = 0; i < ch->n; i++)
    arg(&cmds[ncmd], members[i],
        member_of(members[i], sub, ch->obj[i]->kind, ch->obj[i]->name,
                  ch->obj[i]->len));
  ncmd++;
  /* The index lives as long as the retention, as the charge sets it. */
  snprintf(ttl, sizeof(ttl), "%lld", (long long)(ch->retention * 3600 + 3600));
  args(&cmds[ncmd], "EXPIRE");
  args(&cmds[ncmd], hourkey);
  args(&cmds[ncmd++], ttl);
  if (pipeline(r, cmds, ncmd, rp) != 0)
    return -1;
  for (i = 0; i < ncmd; i++)
    ok &= rp[i]->type == REDIS_REPLY_INTEGER;
  free_replies(rp, ncmd);
  if (!ok) {
    mark_down(r);
    return -1;
  }
  return 0;
}

/* A reset (ch->reset) on Redis, under r->lock: one script, so that no
   decision of another server comes between emptying the windows and
   recording the floor of the day. 0, or -1 when Redis did not answer. */
static int redis_reset(redis_store *r, const obspam__charge *ch) {
  char w[KEY_MAX], h[KEY_MAX], ts[24], rets[24];
  const obspam__obj *o = ch->obj[0];
  const char *sub = sub_of(o);
  redisReply *rp;
  cmd c;
  int ok;

  memset(&c, 0, sizeof(c));
  args(&c, "EVALSHA");
  arg(&c, r->sha_reset, 40);
  args(&c, "2");
  arg(&c, w, key_of(r, w, sub, o->kind, o->name, o->len, 'w'));
  arg(&c, h, key_of(r, h, sub, o->kind, o->name, o->len, 'h'));
  snprintf(ts, sizeof(ts), "%lld", (long long)ch->t);
  snprintf(rets, sizeof(rets), "%lld", (long long)ch->retention);
  args(&c, ts);
  args(&c, rets);
  if (pipeline(r, &c, 1, &rp) != 0)
    return -1;
  ok = rp->type == REDIS_REPLY_INTEGER && rp->integer == 1;
  freeReplyObject(rp);
  if (!ok) {
    mark_down(r);
    return -1;
  }
  return 0;
}

/* A reset must reach every server: with Redis down it fails
   (OBSPAM_EUNAVAIL) and changes nothing, instead of emptying only this
   server's stand-in counters. Once Redis has it, the local counters
   reset too (not journaled, as no decision on Redis is), so that a
   fallback later does not refuse on what came before; that reset
   failing for memory only leaves the stand-in as it was. */
static int r_reset(redis_store *r, obspam__charge *ch) {
  void (*record)(void *, const obspam__charge *) = ch->record;
  int rc;

  pthread_mutex_lock(&r->lock);
  if (ch->t < r->newest)
    ch->t = r->newest;
  else
    r->newest = ch->t;
  rc = redis_reset(r, ch);
  pthread_mutex_unlock(&r->lock);
  if (rc != 0)
    return OBSPAM_EUNAVAIL;
  ch->record = NULL;
  (void)r->local->ops->charge(r->local, ch);
  ch->record = record;
  return OBSPAM_OK;
}

static int r_charge(obspam__store *s, obspam__charge *ch) {
  redis_store *r = (redis_store *)s;
  int rc;

  if (ch->note)
    return OBSPAM_OK; /* Redis keeps no rows of scripts charged to nobody */
  if (ch->reset)
    return r_reset(r, ch);
  if (ch->listed) {
    /* Recorded where the charges are; with Redis down, in the local
       counters that stand in for it (nothing waits on an exempt
       message). */
    pthread_mutex_lock(&r->lock);
    if (ch->t < r->newest)
      ch->t = r->newest;
    else if (!ch->dry)
      r->newest = ch->t;
    rc = ch->dry ? 0 : redis_listed(r, ch);
    pthread_mutex_unlock(&r->lock);
    return rc == 0 ? OBSPAM_OK : r->local->ops->charge(r->local, ch);
  }

  pthread_mutex_lock(&r->lock);
  if (ch->timeout_ms > 0 && ch->timeout_ms != r->timeout_ms) {
    r->timeout_ms = ch->timeout_ms;
    if (r->c != NULL) {
      struct timeval tv = {(time_t)(r->timeout_ms / 1000),
                           (suseconds_t)((r->timeout_ms % 1000) * 1000)};

      redisSetTimeout(r->c, tv);
    }
  }
  if (ch->t < r->newest)
    ch->t = r->newest;
  else if (!ch->dry)
    r->newest = ch->t;
  rc = redis_charge(r, ch);
  if (rc != 0 && !ch->dry)
    r->fallbacks++;
  pthread_mutex_unlock(&r->lock);
  if (rc == 0) {
    /* Notices come from each node's own notification periods: account
       the decision there (allocation failure only costs a notice). */
    if (!ch->dry) {
      ch->notify_only = 1;
      (void)r->local->ops->charge(r->local, ch);
      ch->notify_only = 0;
    }
    return OBSPAM_OK;
  }
  if (ch->defer)
    return OBSPAM_EUNAVAIL;
  return r->local->ops->charge(r->local, ch);
}

static void r_read(obspam__store *s, const obspam__obj *o, int64_t now,
                   int64_t retention, obspam__reading *out) {
  redis_store *r = (redis_store *)s;
  char w[KEY_MAX], h[KEY_MAX], nows[24], rets[24];
  const char *sub = sub_of(o);
  cmd c;
  redisReply *rp;

  memset(&c, 0, sizeof(c));
  pthread_mutex_lock(&r->lock);
  if (now < r->newest)
    now = r->newest;
  args(&c, "EVALSHA");
  arg(&c, r->sha_read, 40);
  args(&c, "2");
  arg(&c, w, key_of(r, w, sub, o->kind, o->name, o->len, 'w'));
  arg(&c, h, key_of(r, h, sub, o->kind, o->name, o->len, 'h'));
  snprintf(nows, sizeof(nows), "%lld", (long long)now);
  snprintf(rets, sizeof(rets), "%lld", (long long)retention);
  args(&c, nows);
  args(&c, rets);
  if (pipeline(r, &c, 1, &rp) == 0) {
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 11) {
      out->count = int_of(rp->element[0]);
      out->refused = int_of(rp->element[1]);
      out->refused_total = int_of(rp->element[2]);
      out->last_refused = int_of(rp->element[3]);
      out->exceeded = int_of(rp->element[4]);
      out->exceeded_total = int_of(rp->element[5]);
      out->count_day = int_of(rp->element[6]);
      out->count_minute = int_of(rp->element[7]);
      out->last_reset = int_of(rp->element[8]);
      out->forwarded = int_of(rp->element[9]);
      out->lists = int_of(rp->element[10]);
      freeReplyObject(rp);
      pthread_mutex_unlock(&r->lock);
      return;
    }
    freeReplyObject(rp);
    mark_down(r);
  }
  pthread_mutex_unlock(&r->lock);
  r->local->ops->read(r->local, o, now, retention, out);
}

static void r_forget(obspam__store *s, obspam__obj *o) {
  redis_store *r = (redis_store *)s;
  char w[KEY_MAX], h[KEY_MAX];
  const char *sub = sub_of(o);
  cmd c;
  redisReply *rp;

  /* An object removed and added again starts from zero on every node. */
  memset(&c, 0, sizeof(c));
  args(&c, "DEL");
  arg(&c, w, key_of(r, w, sub, o->kind, o->name, o->len, 'w'));
  arg(&c, h, key_of(r, h, sub, o->kind, o->name, o->len, 'h'));
  pthread_mutex_lock(&r->lock);
  if (pipeline(r, &c, 1, &rp) == 0)
    freeReplyObject(rp);
  pthread_mutex_unlock(&r->lock);
  r->local->ops->forget(r->local, o);
}

static int r_carry(obspam__store *s, obspam__successor successor, void *ud) {
  redis_store *r = (redis_store *)s;

  /* Redis keys are by name: nothing to carry there. */
  return r->local->ops->carry(r->local, successor, ud);
}

static int r_reserve(obspam__store *s, obspam__obj *root) {
  redis_store *r = (redis_store *)s;

  return r->local->ops->reserve(r->local, root);
}

/* Parses a history hash into hours within [cutoff, ...) overlapping
   [from, to), oldest first. Fills a fresh array. An hour with a last
   attempt but no window was written by a version that knew the hour
   window only (1.3.0 and before): its window is old_window, the hour for
   an object, none for a script. */
static int parse_hours(const redisReply *rp, int64_t cutoff, int64_t from,
                       int64_t to, int64_t old_window, obspam__hour **out,
                       size_t *n) {
  obspam__hour *h;
  size_t i, j, k = 0;

  *out = NULL;
  *n = 0;
  if (rp->type != REDIS_REPLY_ARRAY || rp->elements == 0)
    return OBSPAM_OK;
  h = calloc(rp->elements / 2 + 1, sizeof(*h));
  if (h == NULL)
    return OBSPAM_ENOMEM;
  for (i = 0; i + 1 < rp->elements; i += 2) {
    const char *f = rp->element[i]->str;
    char *end;
    long long hour = strtoll(f, &end, 10);
    int64_t v = int_of(rp->element[i + 1]);

    if (end == f || *end != ':' || !obspam__hour_in(hour, cutoff, from, to))
      continue;
    for (j = 0; j < k && h[j].hour != hour; j++)
      ;
    if (j == k) {
      h[k].hour = hour;
      h[k++].window = -1;
    }
    if (strcmp(end + 1, "fw") == 0)
      h[j].forwarded = v;
    else if (strcmp(end + 1, "ls") == 0)
      h[j].lists = v;
    else if (end[1] != '\0' && end[2] == '\0')
      switch (end[1]) {
      case 's':
        h[j].sent = v;
        break;
      case 'r':
        h[j].refused = v;
        break;
      case 'x':
        h[j].exceeded = v;
        break;
      case 'f':
        h[j].first = v;
        break;
      case 'l':
        h[j].last = v;
        break;
      case 'w':
        h[j].window = v;
        break;
      }
  }
  for (i = 0; i < k; i++)
    if (h[i].window < 0)
      h[i].window = h[i].last != 0 ? old_window : 0;
  /* Oldest first; a few hundred hours at most. */
  for (i = 1; i < k; i++)
    for (j = i; j > 0 && h[j - 1].hour > h[j].hour; j--) {
      obspam__hour t = h[j];

      h[j] = h[j - 1];
      h[j - 1] = t;
    }
  *out = h;
  *n = k;
  return OBSPAM_OK;
}

static int r_history(obspam__store *s, const obspam__obj *o, const char *script,
                     size_t script_len, int64_t from, int64_t to,
                     int64_t retention, obspam__hour **out, size_t *n) {
  redis_store *r = (redis_store *)s;
  char key[KEY_MAX], sub[OBSPAM_NAME_MAX + 1];
  int64_t cutoff;
  redisReply *rp;
  cmd c;
  int rc;

  pthread_mutex_lock(&r->lock);
  cutoff = obspam__hour_cutoff(obspam__hour_of(r->newest), retention);
  if (o == NULL) {
    /* A script: under the subscription it was last charged to. */
    memset(&c, 0, sizeof(c));
    snprintf(key, sizeof(key), "%sscripts", r->prefix);
    args(&c, "HGET");
    args(&c, key);
    arg(&c, script, script_len);
    if (pipeline(r, &c, 1, &rp) != 0)
      goto local;
    if (rp->type != REDIS_REPLY_STRING || rp->len > OBSPAM_NAME_MAX) {
      freeReplyObject(rp);
      pthread_mutex_unlock(&r->lock);
      *out = NULL;
      *n = 0;
      return OBSPAM_ENOTFOUND;
    }
    memcpy(sub, rp->str, rp->len);
    sub[rp->len] = '\0';
    freeReplyObject(rp);
  } else {
    snprintf(sub, sizeof(sub), "%s", sub_of(o));
  }
  memset(&c, 0, sizeof(c));
  args(&c, "HGETALL");
  if (o == NULL)
    arg(&c, key, key_of(r, key, sub, OBSPAM_SCRIPT, script, script_len, 'h'));
  else
    arg(&c, key, key_of(r, key, sub, o->kind, o->name, o->len, 'h'));
  if (pipeline(r, &c, 1, &rp) != 0)
    goto local;
  rc = parse_hours(rp, cutoff, from, to, o == NULL ? 0 : 3600, out, n);
  freeReplyObject(rp);
  if (rc == OBSPAM_OK) {
    /* An hour of exempt list deliveries alone sent and refused nothing:
       no hour of history, as in the in-memory store. */
    size_t i, k = 0;

    for (i = 0; i < *n; i++)
      if ((*out)[i].sent != 0 || (*out)[i].refused != 0)
        (*out)[k++] = (*out)[i];
    *n = k;
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
local:
  pthread_mutex_unlock(&r->lock);
  return r->local->ops->history(r->local, o, script, script_len, from, to,
                                retention, out, n);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Strings, each its own allocation. */
typedef struct strlist {
  char **v;
  size_t n, cap;
} strlist;

static void strlist_free(strlist *l) {
  size_t i;

  for (i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

static int strlist_add(strlist *l, const char *str) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **grown = realloc(l->v, cap * sizeof(*grown));

    if (grown == NULL)
      return OBSPAM_ENOMEM;
    l->v = grown;
    l->cap = cap;
  }
  if ((l->v[l->n] = strdup(str)) == NULL)
    return OBSPAM_ENOMEM;
  l->n++;
  return OBSPAM_OK;
}

/* Sorts l and drops the repeated strings. */
static void strlist_unique(strlist *l) {
  size_t i, k = 0;

  if (l->n == 0)
    return;
  qsort(l->v, l->n, sizeof(*l->v), cmp_str);
  for (i = 1; i < l->n; i++) {
    if (strcmp(l->v[i], l->v[k]) == 0)
      free(l->v[i]);
    else
      l->v[++k] = l->v[i];
  }
  l->n = k + 1;
}

/* The objects in the report index of the clock hours first to last:
   each "KIND\tSUB\tNAME" once, however many of the hours it was active
   in. OBSPAM_OK, OBSPAM_ENOMEM, or OBSPAM_EUNAVAIL when Redis does not
   answer. */
static int indexed_objects(redis_store *r, int64_t first, int64_t last,
                           strlist *out) {
  char key[KEY_MAX];
  int64_t hour;
  redisReply *rp;
  size_t i;
  cmd c;
  int rc = OBSPAM_OK;

  for (hour = first; hour <= last && rc == OBSPAM_OK; hour += 3600) {
    memset(&c, 0, sizeof(c));
    snprintf(key, sizeof(key), "%sidx:%lld", r->prefix, (long long)hour);
    args(&c, "SMEMBERS");
    args(&c, key);
    if (pipeline(r, &c, 1, &rp) != 0)
      return OBSPAM_EUNAVAIL;
    for (i = 0; rp->type == REDIS_REPLY_ARRAY && i < rp->elements; i++)
      if ((rc = strlist_add(out, rp->element[i]->str)) != OBSPAM_OK)
        break;
    freeReplyObject(rp);
  }
  strlist_unique(out);
  return rc;
}

/* The report row of the index member "KIND\tSUB\tNAME" (which it cuts
   at the second tab: row->name points into it): the sums of the object's
   hours after cutoff that overlap [from, to). *listed says whether the
   row belongs in the report; a member of another shape has none.
   OBSPAM_OK, OBSPAM_ENOMEM, or OBSPAM_EUNAVAIL when Redis does not
   answer. */
static int object_row(redis_store *r, char *member, int64_t cutoff,
                      int64_t from, int64_t to, int every, obspam__row *row,
                      int *listed) {
  char key[KEY_MAX], *kind_end, *sub, *tab;
  obspam__hour *h;
  size_t nh, k;
  redisReply *rp;
  cmd c;
  int rc;

  *listed = 0;
  memset(row, 0, sizeof(*row));
  row->kind = (int)strtol(member, &kind_end, 10);
  if (*kind_end != '\t' || (tab = strchr(kind_end + 1, '\t')) == NULL)
    return OBSPAM_OK;
  sub = kind_end + 1;
  *tab = '\0';
  row->name = tab + 1;
  memset(&c, 0, sizeof(c));
  args(&c, "HGETALL");
  arg(&c, key,
      key_of(r, key, sub, row->kind, row->name, strlen(row->name), 'h'));
  if (pipeline(r, &c, 1, &rp) != 0)
    return OBSPAM_EUNAVAIL;
  rc = parse_hours(rp, cutoff, from, to, row->kind == OBSPAM_SCRIPT ? 0 : 3600,
                   &h, &nh);
  freeReplyObject(rp);
  if (rc != OBSPAM_OK)
    return rc;
  for (k = 0; k < nh; k++)
    obspam__row_add(row, &h[k]);
  free(h);
  *listed = obspam__row_reported(row->kind, row, every);
  /* A script is indexed under the subscription its message was charged
     to; Redis keeps no uid. */
  row->uid = -1;
  row->sub = row->kind == OBSPAM_SCRIPT && sub[0] != '\0' ? sub : NULL;
  return OBSPAM_OK;
}

/* Moves rows[0..n) into one allocation that also holds their names, as
   store.h's report asks. OBSPAM_OK (rows is then gone), or OBSPAM_ENOMEM
   (rows is still the caller's). */
static int pack_rows(obspam__row *rows, size_t n, obspam__row **out) {
  size_t bytes = 0, i;
  obspam__row *packed;
  char *at;

  for (i = 0; i < n; i++)
    bytes += strlen(rows[i].name) + 1 +
             (rows[i].sub != NULL ? strlen(rows[i].sub) + 1 : 0);
  packed = realloc(rows, n * sizeof(*rows) + bytes + 1);
  if (packed == NULL)
    return OBSPAM_ENOMEM;
  at = (char *)(packed + n);
  for (i = 0; i < n; i++) {
    size_t len = strlen(packed[i].name) + 1;

    memcpy(at, packed[i].name, len);
    packed[i].name = at;
    at += len;
    if (packed[i].sub != NULL) {
      len = strlen(packed[i].sub) + 1;
      memcpy(at, packed[i].sub, len);
      packed[i].sub = at;
      at += len;
    }
  }
  *out = packed;
  return OBSPAM_OK;
}

/* A report from Redis, as store_mem.c's mem_report makes one: every
   object indexed in the hours overlapping [from, to) within the
   retention, with the sums of its hours. OBSPAM_OK, OBSPAM_ENOMEM, or
   OBSPAM_EUNAVAIL when Redis does not answer. Under r->lock. A node that
   has decided nothing since it started has seen no time yet, but the
   other nodes' counts are in Redis: the end of the period stands in. */
static int redis_report(redis_store *r, int64_t from, int64_t to,
                        int64_t retention, int every, obspam__row **out,
                        size_t *n) {
  int64_t newest = r->newest > 0 ? r->newest : to - 1;
  int64_t cutoff = obspam__hour_cutoff(obspam__hour_of(newest), retention);
  int64_t first = obspam__hour_of(from > cutoff ? from : cutoff);
  int64_t last = obspam__hour_of(to - 1 < newest ? to - 1 : newest);
  strlist members = {NULL, 0, 0};
  obspam__row *rows = NULL;
  size_t i, k = 0;
  int rc = OBSPAM_OK, listed;

  if (to > from)
    rc = indexed_objects(r, first, last, &members);
  if (rc == OBSPAM_OK && members.n > 0 &&
      (rows = calloc(members.n, sizeof(*rows))) == NULL)
    rc = OBSPAM_ENOMEM;
  for (i = 0; rc == OBSPAM_OK && i < members.n; i++) {
    rc =
        object_row(r, members.v[i], cutoff, from, to, every, &rows[k], &listed);
    if (rc == OBSPAM_OK && listed)
      k++;
  }
  if (rc == OBSPAM_OK && (rc = pack_rows(rows, k, out)) == OBSPAM_OK) {
    rows = NULL;
    *n = k;
  }
  free(rows);
  strlist_free(&members);
  return rc;
}

static int r_report(obspam__store *s, int64_t from, int64_t to,
                    int64_t retention, int every, obspam__row **out,
                    size_t *n) {
  redis_store *r = (redis_store *)s;
  int rc;

  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&r->lock);
  rc = redis_report(r, from, to, retention, every, out, n);
  pthread_mutex_unlock(&r->lock);
  if (rc != OBSPAM_EUNAVAIL)
    return rc;
  /* Redis does not answer: what this server saw itself. */
  return r->local->ops->report(r->local, from, to, retention, every, out, n);
}

static int r_notices(obspam__store *s, int64_t now, obspam__pending **out) {
  redis_store *r = (redis_store *)s;

  return r->local->ops->notices(r->local, now, out);
}

/* The local store is the engine's: it outlives this one. */
static void r_destroy(obspam__store *s) {
  redis_store *r = (redis_store *)s;

  if (r->c != NULL)
    redisFree(r->c);
  pthread_mutex_destroy(&r->lock);
  free(r->uri);
  free(r->prefix);
  free(r);
}

static int r_same(const obspam__store *s, const char *uri, const char *prefix) {
  const redis_store *r = (const redis_store *)s;

  if (prefix == NULL)
    prefix = "obspam:";
  return strcmp(r->uri, uri) == 0 && strcmp(r->prefix, prefix) == 0;
}

static void r_status(obspam__store *s, int64_t out[4]) {
  redis_store *r = (redis_store *)s;

  pthread_mutex_lock(&r->lock);
  out[0] = 1;
  out[1] = r->up;
  out[2] = r->episodes;
  out[3] = r->fallbacks;
  pthread_mutex_unlock(&r->lock);
}

/* No save or load: a snapshot holds the local store's counters, which
   the engine saves and loads itself. */
static const obspam__store_ops redis_ops = {.charge = r_charge,
                                            .read = r_read,
                                            .forget = r_forget,
                                            .carry = r_carry,
                                            .reserve = r_reserve,
                                            .history = r_history,
                                            .report = r_report,
                                            .notices = r_notices,
                                            .destroy = r_destroy,
                                            .same = r_same,
                                            .status = r_status};

obspam__store *obspam__redis_store_new(const char *uri, const char *prefix,
                                       obspam__store *local) {
  redis_store *r;

  if (prefix == NULL)
    prefix = "obspam:";
  if (strlen(prefix) > OBSPAM__PREFIX_MAX)
    return NULL;
  r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  if (obspam__store_addr_parse(uri, &r->addr) != NULL ||
      pthread_mutex_init(&r->lock, NULL) != 0) {
    free(r);
    return NULL;
  }
  r->uri = strdup(uri);
  r->prefix = strdup(prefix);
  if (r->uri == NULL || r->prefix == NULL) {
    free(r->uri);
    free(r->prefix);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
  }
  r->base.ops = &redis_ops;
  r->local = local;
  r->up = 1;
  r->timeout_ms = 200;
  return &r->base;
}

#endif
