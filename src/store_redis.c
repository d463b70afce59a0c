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
                            buckets are deleted; from 1.4 the running
                            totals "H0" and "M0" (sent in the hour and
                            minute windows) and "N0" and "K0" (the
                            newest minute and tick), which older nodes
                            delete as buckets of minute 0 and the next
                            1.4 decision counts again; TTL a little over
                            the hour, set at the first write of a tick
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
                            an hour, set at the first write of an hour
     P idx:<hour>           set of "KIND\tS\tNAME" active in that hour, for
                            reports; TTL the retention
     P{sub:S}:ledger:NODE:SEQ
                            "1": entry SEQ of the outage ledger of the
                            store named NODE was added (lua_add), so it is
                            never added twice; TTL the window's (1.4.1)
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
#include <sys/random.h>
#include <unistd.h>

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
    "local cs=ARGV[3] local c=tonumber(cs) local forbid=ARGV[4]=='1'\n"
    "local probe=ARGV[5]=='1' local dry=ARGV[6]=='1'\n"
    "local ret=tonumber(ARGV[7]) local script=ARGV[8]=='1'\n"
    "local wttl=ARGV[9] local overcap=ARGV[10]=='1'\n"
    "local marks=tonumber(ARGV[11+3*n]) or 0\n"
    /* The day window reads the history's hours: keep 24 of them whatever
       the retention. */
    "local keep=math.max(ret,24)\n"
    "local tick=math.floor(t/5) local minute=math.floor(t/60)\n"
    "local hnum=math.floor(t/3600) local hour=hnum*3600\n"
    /* The field names every object uses are made once per decision; c
       is also kept as the string it came as, so that no number is
       formatted again for Redis. */
    "local secs={60,3600,86400}\n"
    "local hs=string.format('%d',hour)\n"
    "local call,tonumber=redis.call,tonumber\n"
    /* wait_of() of store_mem.c, for a message that does not fit: over a
       window of nb buckets of size seconds whose current one is cur, b
       holding sent, it fits once the buckets before k have left, at the
       time bucket k + nb - 1 begins. last is the newest bucket: the loop
       stops there even if sent and the buckets disagree. */
    "local function wait_of(b,cur,nb,size,sent,limit,last)\n"
    "  if c>limit then return -1 end\n"
    "  local k=cur-nb+1\n"
    "  while sent+c>limit and k<=last do sent=sent-(b[k] or 0) k=k+1 end\n"
    "  return (k+nb-1)*size-t\n"
    "end\n"
    /* The buckets letter<lo> to letter<hi> of a window hash, by number,
       read only for a message that does not fit: 15 at a time from the
       oldest, as wait_of() walks them (it seldom needs more than the
       first few), or from the whole hash when it was read already (all)
       or the span is wide (a node's clock far ahead). */
    "local function span(key,all,letter,lo,hi)\n"
    "  if not all and hi-lo<120 then\n"
    "    return setmetatable({},{__index=function(b,k)\n"
    "      if k<lo or k>hi then return nil end\n"
    "      local f={} for j=k,math.min(k+14,hi) do f[#f+1]=letter..j end\n"
    "      local v=call('HMGET',key,unpack(f))\n"
    "      for j=1,#f do b[k+j-1]=tonumber(v[j]) or 0 end\n"
    "      return b[k]\n"
    "    end})\n"
    "  end\n"
    "  all=all or call('HGETALL',key)\n"
    "  local b,w={},string.byte(letter)\n"
    "  for j=1,#all,2 do\n"
    "    local f=all[j]\n"
    "    if string.byte(f,1)==w then\n"
    "      b[tonumber(string.sub(f,2))]=tonumber(all[j+1]) end\n"
    "  end\n"
    "  return b\n"
    "end\n"
    /* The buckets letter<lo> to letter<hi> leaving the window: their sum,
       to take from the running total, and their names (with the
       refusals of the same minutes) added to stale. */
    "local function drop(key,letter,lo,hi,stale)\n"
    "  local f={} for k=lo,hi do f[#f+1]=letter..k end\n"
    "  local v=call('HMGET',key,unpack(f))\n"
    "  local sum=0\n"
    "  for j=1,#f do\n"
    "    sum=sum+(tonumber(v[j]) or 0) stale[#stale+1]=f[j]\n"
    "    if letter=='s' then\n"
    "      stale[#stale+1]='r'..(lo+j-1) stale[#stale+1]='x'..(lo+j-1) end\n"
    "  end\n"
    "  return sum\n"
    "end\n" DAY_FLOOR "local function longer(a,b)\n"
    "  if a==-1 then return b~=-1 end\n"
    "  return b~=-1 and a>b\n"
    "end\n"
    "local out,over,win,tot={0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0},{},{},{}\n"
    "local dayf=nil\n"
    "local refuser,retry=0,0\n"
    "for i=1,n do\n"
    "  local key=KEYS[i]\n"
    "  local l1,l2=tonumber(ARGV[8+3*i]),tonumber(ARGV[9+3*i])\n"
    "  local l3=tonumber(ARGV[10+3*i])\n"
    /* The window hash's running totals: H0 the hour's sent (the "s"
       buckets after minute N0-60), M0 the minute's (the "m" buckets
       after tick K0-12), N0 and K0 the newest minute and tick charged
       or refused; older buckets are gone. A message that fits costs
       this HMGET and the increments below, whatever the hash holds. */
    "  local g=call('HMGET',key,'H0','M0','N0','K0')\n"
    "  local sh,sm=tonumber(g[1]),tonumber(g[2])\n"
    "  local pn,pk=tonumber(g[3]),tonumber(g[4])\n"
    "  local stale,all,fix=false,nil,false\n"
    /* No totals: a new hash, the ledger of an outage added to it, or a
       node of 1.3 charged it (its script deletes every field it takes
       for a bucket of minute 0, the four totals among them, in the
       same run as its own write). Count them again from every bucket,
       and delete the stale ones, once. */
    "  if not (sh and sm and pn and pk) then\n"
    "    all=call('HGETALL',key) stale={}\n"
    "    pn,pk,sh,sm,fix=minute,tick,0,0,true\n"
    "    for j=1,#all,2 do\n"
    "      local w=string.byte(all[j],1)\n"
    "      if w==109 then pk=math.max(pk,tonumber(string.sub(all[j],2)))\n"
    "      elseif w==115 or w==114 or w==120 then\n"
    "        pn=math.max(pn,tonumber(string.sub(all[j],2))) end\n"
    "    end\n"
    "    for j=1,#all,2 do\n"
    "      local f=all[j] local w=string.byte(f,1)\n"
    "      if w==109 then\n"
    "        if tonumber(string.sub(f,2))<=pk-12 then stale[#stale+1]=f\n"
    "        else sm=sm+all[j+1] end\n"
    "      elseif w==115 or w==114 or w==120 then\n"
    "        if tonumber(string.sub(f,2))<=pn-60 then stale[#stale+1]=f\n"
    "        elseif w==115 then sh=sh+all[j+1] end\n"
    "      end\n"
    "    end\n"
    /* A new minute or tick: the buckets that left the window since the
       newest come off the totals. A node whose clock is behind the
       newest changes nothing: it sees the window of the newest. */
    "  elseif minute>pn or tick>pk then\n"
    "    stale={}\n"
    "    if minute>pn then\n"
    "      local lo,hi=pn-59,math.min(minute-60,pn)\n"
    "      if lo<=hi then sh=sh-drop(key,'s',lo,hi,stale) end\n"
    "      pn,fix=minute,true\n"
    "    end\n"
    "    if tick>pk then\n"
    "      local lo,hi=pk-11,math.min(tick-12,pk)\n"
    "      if lo<=hi then sm=sm-drop(key,'m',lo,hi,stale) end\n"
    "      pk,fix=tick,true\n"
    "    end\n"
    "  end\n"
    /* The day: the clock hours of the history, read only when the day
       has a limit (its count is reported only when it is named). A reset
       (rt, rb) starts it at its hour, less what that hour had sent
       before it. */
    "  local sd,bd=0,nil\n"
    "  if l3>=0 then\n"
    "    if not dayf then\n"
    "      dayf={}\n"
    "      for h=hnum-23,hnum do\n"
    "        dayf[#dayf+1]=string.format('%d:s',h*3600) end\n"
    "      dayf[25]='rt' dayf[26]='rb'\n"
    "    end\n"
    "    local got=call('HMGET',KEYS[n+i],unpack(dayf))\n"
    "    local rh,rb=day_floor(got[25],got[26])\n"
    "    bd={}\n"
    "    for h=math.max(hnum-23,rh),hnum do\n"
    "      local v=tonumber(got[h-hnum+24])\n"
    "      if v then\n"
    "        if h==rh then v=v-rb end\n"
    "        bd[h]=v sd=sd+v\n"
    "      end\n"
    "    end\n"
    "  end\n"
    /* out: the counts of the 3 objects (minute, hour, day each), then
       their waits. */
    "  local o=3*i-3\n"
    "  out[o+1]=sm out[o+2]=sh out[o+3]=sd\n"
    /* longer() and the naming of judge.c: each object's windows from the
       longest, then its cap (the lowest object's), the first of the
       longest waits keeping the name, -1 the longest of all. over[i]:
       the attempt went over the ith object's own limit; win[i]: the
       window (seconds) recorded for it. */
    "  local best,bw=0,0\n"
    "  if l1>=0 and sm+c>l1 or l2>=0 and sh+c>l2 or l3>=0 and sd+c>l3 then\n"
    "    if l1>=0 and sm+c>l1 then\n"
    "      local last=math.max(tick,pk)\n"
    "      local b=span(key,all,'m',tick-11,last)\n"
    "      out[o+10]=wait_of(b,tick,12,5,sm,l1,last)\n"
    "    end\n"
    "    if l2>=0 and sh+c>l2 then\n"
    "      local last=math.max(minute,pn)\n"
    "      local b=span(key,all,'s',minute-59,last)\n"
    "      out[o+11]=wait_of(b,minute,60,60,sh,l2,last)\n"
    "    end\n"
    "    if l3>=0 and sd+c>l3 then\n"
    "      out[o+12]=wait_of(bd,hnum,24,3600,sd,l3,hnum) end\n"
    "    for w=3,1,-1 do\n"
    "      local v=out[o+9+w]\n"
    "      if v~=0 and (best==0 or longer(v,best)) then\n"
    "        best=v bw=secs[w] end\n"
    "    end\n"
    "  end\n"
    "  if i==n and overcap and (best==0 or longer(-1,best)) then\n"
    "    best=-1 bw=0 end\n"
    "  over[i]=best~=0 win[i]=bw\n"
    "  if best~=0 and (refuser==0 or longer(best,retry)) then\n"
    "    refuser=i retry=best end\n"
    "  local z=6*i-6\n"
    "  tot[z+1]=stale tot[z+2]=fix tot[z+3]=sh\n"
    "  tot[z+4]=sm tot[z+5]=pn tot[z+6]=pk\n"
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
    "  local ts,hss=string.format('%d',t),hs..':s'\n"
    "  local function hist(key,refd,x,w,mk)\n"
    "    local f,v\n"
    "    if refd then f=hs..':r' v=call('HINCRBY',key,f,1)\n"
    "    else f=hss v=call('HINCRBY',key,f,cs) end\n"
    /* The first of its kind in the hour (HINCRBY answers the sum, so
       the sum is what it added): the hours past the retention go, the
       last reset with them once none is left (as the in-memory store
       forgets it), and the TTL is set, so that it runs from the newest
       hour. f, just written, is not an older hour that keeps the
       reset. */
    "    if v==(refd and 1 or c) then\n"
    "      local cutoff=hour-(keep-1)*3600 local old,live={},false\n"
    "      for _,k in ipairs(call('HKEYS',key)) do\n"
    "        local h=tonumber(string.match(k,'^(%d+):'))\n"
    "        if h and h<cutoff then old[#old+1]=k end\n"
    "        if h and h>=cutoff and k~=f then live=true end\n"
    "      end\n"
    "      if #old>0 then call('HDEL',key,unpack(old)) end\n"
    "      local rt=tonumber(call('HGET',key,'rt'))\n"
    "      if rt and not live and rt-rt%3600<cutoff then\n"
    "        call('HDEL',key,'rt','rb') end\n"
    "      call('EXPIRE',key,keep*3600+3600)\n"
    "    end\n"
    "    if refd then\n"
    "      if x then call('HINCRBY',key,hs..':x',1) end\n"
    "      if w then\n"
    "        call('HSETNX',key,hs..':f',ts)\n"
    "        call('HSET',key,'lr',ts,hs..':l',ts,hs..':w',w)\n"
    "      else call('HSET',key,'lr',ts) end\n"
    "    else\n"
    "      if mk%2==1 then call('HINCRBY',key,hs..':fw',cs) end\n"
    "      if mk%4>=2 then call('HINCRBY',key,hs..':ls',cs) end\n"
    "    end\n"
    "  end\n"
    "  local sf,mf='s'..minute,'m'..tick\n"
    "  for i=1,n do\n"
    "    local key=KEYS[i]\n"
    "    local stale,fix,sh,sm,pn,pk=unpack(tot,6*i-5,6*i)\n"
    "    if stale and #stale>0 then call('HDEL',key,unpack(stale)) end\n"
    "    local charge=refuser==0 and not probe\n"
    /* New totals are set whole, with the TTL (so at most once per tick);
       unchanged ones grow with the charge, unless the charge's own
       bucket is already out of the newest node's window. */
    "    if fix then\n"
    "      if charge then\n"
    "        if minute>pn-60 then sh=sh+c end\n"
    "        if tick>pk-12 then sm=sm+c end\n"
    "      end\n"
    "      call('HSET',key,'H0',sh,'M0',sm,'N0',pn,'K0',pk)\n"
    "      call('EXPIRE',key,wttl)\n"
    "    elseif charge then\n"
    "      if minute>pn-60 then call('HINCRBY',key,'H0',cs) end\n"
    "      if tick>pk-12 then call('HINCRBY',key,'M0',cs) end\n"
    "    end\n"
    "    if refuser>0 then\n"
    "      call('HINCRBY',key,'r'..minute,1)\n"
    "      if over[i] then\n"
    "        call('HINCRBY',key,'x'..minute,1)\n"
    "        hist(KEYS[n+i],true,true,win[i],0)\n"
    "      else hist(KEYS[n+i],true,false,nil,0) end\n"
    "    elseif charge then\n"
    "      call('HINCRBY',key,sf,cs)\n"
    "      call('HINCRBY',key,mf,cs)\n"
    "      hist(KEYS[n+i],false,false,nil,marks)\n"
    "    end\n"
    "  end\n"
    "  if script and (refuser>0 or not probe) then\n"
    "    hist(KEYS[2*n+1],refuser>0,false,0,0)\n"
    "  end\n"
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

/* The ledger of an outage (fallback local): the charges a relay made on
   its own counters are added to the buckets they would have had, with no
   check, so that the limits count them once Redis answers again; their
   forwards and mailing-list deliveries (exempt ones among them, which
   charge nothing) go to the same hour of the history in the same run, as
   the charge script records them. An entry is added once: its mark (a
   key of the same slot, named by the node and the entry, kept for the
   window's TTL) is set with it, and an entry whose mark is there already
   (sent again after its answer was lost) adds nothing. KEYS: the n
   window hashes, the n history hashes, the mark. ARGV: n, t, c (0: only
   exempt deliveries), window TTL, retention hours, the forwards and the
   list deliveries among c (or beside it, exempt). Returns 1, or 0 when
   the entry was added before. */
static const char lua_add[] =
    "local n=tonumber(ARGV[1]) local t=tonumber(ARGV[2])\n"
    "local c=tonumber(ARGV[3]) local wttl=tonumber(ARGV[4])\n"
    "if not redis.call('SET',KEYS[2*n+1],'1','NX','EX',wttl) then\n"
    "  return 0 end\n"
    "local keep=math.max(tonumber(ARGV[5]),24)\n"
    "local fw=tonumber(ARGV[6]) local ls=tonumber(ARGV[7])\n"
    "local ms='s'..string.format('%d',math.floor(t/60))\n"
    "local ks='m'..string.format('%d',math.floor(t/5))\n"
    "local hs=string.format('%d',t-t%3600)\n"
    "for i=1,n do\n"
    /* Exempt deliveries alone change no window, as redis_listed's. */
    "  if c>0 then\n"
    "    redis.call('HINCRBY',KEYS[i],ms,c)\n"
    "    redis.call('HINCRBY',KEYS[i],ks,c)\n"
    "    redis.call('HDEL',KEYS[i],'H0','M0','N0','K0')\n"
    "    redis.call('EXPIRE',KEYS[i],wttl)\n"
    "    redis.call('HINCRBY',KEYS[n+i],hs..':s',c)\n"
    "  end\n"
    "  if fw>0 then redis.call('HINCRBY',KEYS[n+i],hs..':fw',fw) end\n"
    "  if ls>0 then redis.call('HINCRBY',KEYS[n+i],hs..':ls',ls) end\n"
    "  redis.call('EXPIRE',KEYS[n+i],keep*3600+3600)\n"
    "end\n"
    "return 1\n";

/* One connection of the pool, used by one caller at a time: the caller
   that took it (take) connects it, talks through it and gives it back,
   holding no lock meanwhile. */
typedef struct conn {
  redisContext *c;
  uint64_t gen;   /* the store's generation it was made in */
  int64_t tmo_ms; /* the socket timeout set on c */
} conn;

/* A charge made on the local counters while Redis did not answer, to be
   added to Redis once it answers again (lua_add): the keys of its
   objects and their report index members, NUL-separated in text. The
   records of one tick on the same objects share an entry: c sums what
   they charged, fw and ls their forwards and list deliveries (an exempt
   one adds to ls alone). 56 bytes before the text on a 64-bit machine,
   as in 1.4: the small fields are packed. */
typedef struct ledger_entry {
  struct ledger_entry *next;
  int64_t t, c, fw, ls;
  int32_t retention; /* hours, at most 87600 (options.c) */
  int32_t records;   /* the charges and exempt deliveries gathered in it */
  uint32_t seq;      /* the entry's number on this node: its mark */
  uint16_t len;      /* at most 3 * 3 * KEY_MAX */
  uint16_t n;
  char text[]; /* n window keys, n history keys, n index members */
} ledger_entry;

/* Keys of objects that a reload dropped, deleted by the housekeeping
   thread in batches. */
typedef struct gone_key {
  struct gone_key *next;
  char key[];
} gone_key;

typedef struct redis_store {
  obspam__store base;
  obspam__store *local;
  char *uri, *prefix;
  obspam__store_addr addr;

  /* The pool: the free connections on a stack. plock is held only to
     take or give back one, never while connecting or waiting for Redis. */
  pthread_mutex_t plock;
  pthread_cond_t pcond;
  int npool, nfree;
  conn *conns;
  conn **free;

  /* Everything below, held for a few instructions at a time. */
  /* Callers of read_named that took the store under the engine's lock
     (obspam__store_ops.use): destroy waits for them. Under plock. */
  int users;
  pthread_mutex_t slock;
  /* The scripts' SHA1s, set once by the first connection that loads
     them (the same text gives the same SHA1 on every server). */
  int have_sha;
  char sha_charge[41], sha_read[41], sha_reset[41], sha_add[41];
  int up;              /* the last attempt worked (1 before the first) */
  int probing;         /* a caller is trying a down Redis again */
  uint64_t gen;        /* counts the outages: older connections are stale */
  int64_t next_try_ms; /* while down: when to try again */
  int64_t episodes, fallbacks;
  int64_t timeout_ms;
  int64_t newest; /* the newest message time seen here */
  /* The ledger of the outages' local charges (fallback local) and
     exempt list deliveries, oldest first, at most LEDGER_MAX records;
     what does not fit is counted in dropped (records) and only the local
     counters hold it. */
  ledger_entry *ledger, *ledger_tail;
  int64_t ledger_n, ledger_replayed, ledger_dropped;
  /* The marks of the ledger's entries: this store's own name (64 random
     bits, in hex) and the next entry's number. */
  char ledger_node[17];
  uint32_t ledger_seq;

  /* Housekeeping: keys to delete, under hlock; the thread runs while
     there are some, started at the first. */
  pthread_mutex_t hlock;
  pthread_cond_t hcond;
  gone_key *gone;
  int64_t gone_n, gone_deleted, gone_dropped;
  int hk_started, hk_stop, hk_busy;
  pthread_t hk;
} redis_store;

#define LEDGER_MAX 65536 /* outage records kept for Redis */
#define REPLAY_MAX 256   /* ledger entries sent in one exchange */
#define GONE_MAX 200000  /* keys of dropped objects queued for deletion */
#define GONE_BATCH 128   /* keys deleted in one exchange */
#define FORGET_BATCH 128 /* removed objects deleted in one exchange */

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval tv_of(int64_t ms) {
  struct timeval tv;

  if (ms < 1)
    ms = 1;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  return tv;
}

/* A connection to ep, made and answering within ms. */
static redisContext *dial(const obspam__endpoint *ep, int64_t ms) {
  struct timeval tv = tv_of(ms);
  redisContext *c;

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

/* The milliseconds left before deadline (monotonic), or 0. */
static int64_t left(int64_t deadline) {
  int64_t ms = deadline - mono_ms();

  return ms > 0 ? ms : 0;
}

/* The master's address, from the first sentinel that knows it, asked
   before deadline. */
static int ask_sentinels(redis_store *r, obspam__endpoint *master,
                         int64_t deadline) {
  int i;

  for (i = 0; i < r->addr.n && left(deadline) > 0; i++) {
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name",
                          r->addr.master};
    size_t len[] = {8, 23, strlen(r->addr.master)};
    redisContext *c = dial(&r->addr.ep[i], left(deadline));
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

/* Connects k to the master before deadline, with the scripts loaded. */
static int connect_master(redis_store *r, conn *k, int64_t deadline) {
  char sha[4][41];
  obspam__endpoint master;
  redisContext *c;

  if (r->addr.sentinel) {
    if (ask_sentinels(r, &master, deadline) != 0)
      return -1;
  } else {
    master = r->addr.ep[0];
  }
  if (left(deadline) == 0 || (c = dial(&master, left(deadline))) == NULL)
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
  if (load_script(c, lua_charge, sha[0]) != 0 ||
      load_script(c, lua_read, sha[1]) != 0 ||
      load_script(c, lua_reset, sha[2]) != 0 ||
      load_script(c, lua_add, sha[3]) != 0)
    goto fail;
  pthread_mutex_lock(&r->slock);
  if (!r->have_sha) {
    memcpy(r->sha_charge, sha[0], 41);
    memcpy(r->sha_read, sha[1], 41);
    memcpy(r->sha_reset, sha[2], 41);
    memcpy(r->sha_add, sha[3], 41);
    r->have_sha = 1;
  }
  pthread_mutex_unlock(&r->slock);
  k->c = c;
  k->tmo_ms = left(deadline);
  return 0;
fail:
  redisFree(c);
  return -1;
}

/* A free connection of the pool, or NULL when none is free before
   deadline. */
static conn *take(redis_store *r, int64_t deadline) {
  struct timespec until;
  conn *k = NULL;

  until.tv_sec = (time_t)(deadline / 1000);
  until.tv_nsec = (long)(deadline % 1000) * 1000000L;
  pthread_mutex_lock(&r->plock);
  while (r->nfree == 0)
    if (pthread_cond_timedwait(&r->pcond, &r->plock, &until) != 0 &&
        r->nfree == 0)
      break;
  if (r->nfree > 0)
    k = r->free[--r->nfree];
  pthread_mutex_unlock(&r->plock);
  return k;
}

static void give(redis_store *r, conn *k) {
  pthread_mutex_lock(&r->plock);
  r->free[r->nfree++] = k;
  pthread_cond_signal(&r->pcond);
  pthread_mutex_unlock(&r->plock);
}

/* One caller's exchange with Redis: its connection, the moment it must
   give up, whether it is the one probing a down Redis, and whether it
   waited so long for its connection that less than half the timeout was
   left for Redis (late). */
typedef struct session {
  conn *k;
  int64_t deadline;
  uint64_t gen;
  int probe, late;
} session;

/* Redis stopped answering x: its connection goes, and an episode is
   counted when Redis was up. Every connection made before is stale from
   now on (gen). A late exchange that fails while Redis is up says
   nothing of Redis: the pool's wait took most of its time, so it falls
   back as the callers that found no connection do, and only its
   connection goes. */
static void down(redis_store *r, session *x) {
  if (x->k->c != NULL) {
    redisFree(x->k->c);
    x->k->c = NULL;
  }
  pthread_mutex_lock(&r->slock);
  if (r->up && x->late) {
    pthread_mutex_unlock(&r->slock);
    return;
  }
  if (r->up) {
    r->episodes++;
    r->gen++;
  }
  r->up = 0;
  r->next_try_ms = mono_ms() + RETRY_MS;
  if (x->probe)
    r->probing = 0;
  x->probe = 0;
  pthread_mutex_unlock(&r->slock);
}

static int replay(redis_store *r, session *x);
static void ledger_add(redis_store *r, const obspam__charge *ch);
static int r_charge(obspam__store *s, obspam__charge *ch);

/* Starts an exchange: 0 with x ready (a connection to the master, the
   scripts loaded, the ledger of an outage sent), or -1 at once while
   Redis is down and another caller probes it or the last try was less
   than RETRY_MS ago, or when neither a connection of the pool nor Redis
   answered within the timeout. After 0, session_end gives x back. */
static int session_start(redis_store *r, session *x) {
  int64_t now = mono_ms(), tmo;
  int owed;

  pthread_mutex_lock(&r->slock);
  x->probe = 0;
  if (!r->up) {
    if (r->probing || now < r->next_try_ms) {
      pthread_mutex_unlock(&r->slock);
      return -1;
    }
    r->probing = x->probe = 1;
    r->next_try_ms = now + RETRY_MS;
  }
  tmo = r->timeout_ms;
  x->gen = r->gen;
  owed = r->ledger != NULL;
  pthread_mutex_unlock(&r->slock);
  x->deadline = now + tmo;
  x->k = take(r, x->deadline);
  x->late = x->k != NULL && left(x->deadline) < tmo / 2;
  if (x->k == NULL) {
    /* Every connection is busy for longer than the timeout: this caller
       falls back without calling Redis down. */
    if (x->probe) {
      pthread_mutex_lock(&r->slock);
      r->probing = 0;
      pthread_mutex_unlock(&r->slock);
    }
    return -1;
  }
  if (x->k->c != NULL && x->k->gen != x->gen) {
    redisFree(x->k->c);
    x->k->c = NULL;
  }
  if (x->k->c == NULL) {
    if (connect_master(r, x->k, x->deadline) != 0)
      goto fail;
    x->k->gen = x->gen;
  } else if (x->k->tmo_ms > left(x->deadline) + 5 ||
             x->k->tmo_ms < left(x->deadline) - 5) {
    /* The timeout changed, or this call waited for its connection: the
       socket's timeout is what is left (a few ms either way are not
       worth two system calls a call). */
    x->k->tmo_ms = left(x->deadline);
    if (redisSetTimeout(x->k->c, tv_of(x->k->tmo_ms)) != REDIS_OK)
      goto fail;
  }
  if (owed && replay(r, x) != 0)
    goto fail;
  return 0;
fail:
  down(r, x);
  give(r, x->k);
  return -1;
}

/* Ends an exchange that session_start began: a probe that got its
   answers brings Redis back up. */
static void session_end(redis_store *r, session *x) {
  if (x->probe) {
    pthread_mutex_lock(&r->slock);
    r->up = 1;
    r->probing = 0;
    pthread_mutex_unlock(&r->slock);
  }
  give(r, x->k);
}

/* A command of a few arguments, built on the stack. */
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

/* Sends the n commands, already in the protocol (fmt[i], flen[i] bytes),
   in one write and reads their replies into rp. A lost connection, a
   demoted master or an unknown script is retried once on a fresh
   connection (a failover, a restarted Redis) while the session has time
   left. Returns 0, or -1 with Redis called down and no reply kept. */
static int send_fmt(redis_store *r, session *x, char *const *fmt,
                    const long long *flen, int n, redisReply **rp) {
  int attempt, i, again;

  for (attempt = 0; attempt < 2; attempt++) {
    if (x->k->c == NULL) {
      if (connect_master(r, x->k, x->deadline) != 0)
        break;
      x->k->gen = x->gen;
    }
    for (i = 0; i < n; i++)
      if (redisAppendFormattedCommand(x->k->c, fmt[i], (size_t)flen[i]) !=
          REDIS_OK)
        break;
    again = i < n;
    for (i = 0; i < n && !again; i++) {
      void *v = NULL;

      rp[i] = NULL;
      if (redisGetReply(x->k->c, &v) != REDIS_OK || v == NULL) {
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
    redisFree(x->k->c);
    x->k->c = NULL;
    if (left(x->deadline) == 0)
      break;
  }
  down(r, x);
  return -1;
}

/* Commands in the protocol, for one exchange. */
typedef struct batch {
  char **fmt;
  long long *flen;
  int n, cap;
} batch;

static void batch_free(batch *b) {
  int i;

  for (i = 0; i < b->n; i++)
    redisFreeCommand(b->fmt[i]);
  free(b->fmt);
  free(b->flen);
  memset(b, 0, sizeof(*b));
}

/* Appends c to b. 0, or -1 when out of memory. */
static int batch_add(batch *b, const cmd *c) {
  char *f = NULL;
  long long len;

  if (b->n == b->cap) {
    int cap = b->cap ? 2 * b->cap : 16;
    char **fmt = realloc(b->fmt, (size_t)cap * sizeof(*fmt));
    long long *flen;

    if (fmt == NULL)
      return -1;
    b->fmt = fmt;
    flen = realloc(b->flen, (size_t)cap * sizeof(*flen));
    if (flen == NULL)
      return -1;
    b->flen = flen;
    b->cap = cap;
  }
  /* hiredis only reads the arguments. */
  len = redisFormatCommandArgv(&f, c->argc, (const char **)(uintptr_t)c->argv,
                               c->len);
  if (len < 0)
    return -1;
  b->fmt[b->n] = f;
  b->flen[b->n++] = len;
  return 0;
}

/* Sends the n commands of cmds in one write, their replies read
   together; as send_fmt. -1 also when out of memory (nothing sent). */
static int pipeline(redis_store *r, session *x, const cmd *cmds, int n,
                    redisReply **rp) {
  batch b = {NULL, NULL, 0, 0};
  int i, rc = -1;

  for (i = 0; i < n; i++)
    if (batch_add(&b, &cmds[i]) != 0)
      break;
  if (i == n)
    rc = send_fmt(r, x, b.fmt, b.flen, n, rp);
  batch_free(&b);
  return rc;
}

/* One command on a session of its own: 0 with *rp, or -1 (Redis does not
   answer: nothing kept). */
static int call1(redis_store *r, const cmd *c, redisReply **rp) {
  session x;
  int rc;

  if (session_start(r, &x) != 0)
    return -1;
  rc = pipeline(r, &x, c, 1, rp);
  session_end(r, &x);
  return rc;
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

/* Appends to b the commands of the charge ch (the script, then, unless
   dry, the report index and the script's subscription): returns how many,
   or -1 when out of memory. The script's SHA1 is known: a session is
   started. */
static int build_charge(redis_store *r, const obspam__charge *ch, batch *b) {
  char keys[7][KEY_MAX], members[4][KEY_MAX], nums[16][24], hourkey[KEY_MAX];
  char lims[3][OBSPAM__WINDOWS][24];
  size_t klen[7], mlen[4];
  cmd cmds[4];
  const char *sub = sub_of(ch->obj[0]);
  int64_t hour = ch->t - ch->t % 3600;
  int i, w, nk = 0, ncmd = 1, has_script = ch->script != NULL && !ch->dry;

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
  arg(&cmds[0], r->sha_charge, 40);
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
  for (i = 0; i < ncmd; i++)
    if (batch_add(b, &cmds[i]) != 0)
      return -1;
  return ncmd;
}

/* The answer of the charge script, res, into ch: 0, or -1 when it is not
   one. */
static int parse_charge(obspam__charge *ch, const redisReply *res) {
  int i, w;

  if (res->type != REDIS_REPLY_ARRAY ||
      res->elements != 2 * 3 * OBSPAM__WINDOWS)
    return -1;
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
  return 0;
}

/* An exempt mailing-list delivery (ch->listed) on Redis: no decision to
   make, so no script; each object's history counts it in
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
  session x;
  int i, ncmd = 0, ok = 1;

  if (session_start(r, &x) != 0)
    return -1;
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
  if (pipeline(r, &x, cmds, ncmd, rp) != 0) {
    session_end(r, &x);
    return -1;
  }
  for (i = 0; i < ncmd; i++)
    ok &= rp[i]->type == REDIS_REPLY_INTEGER;
  free_replies(rp, ncmd);
  if (!ok)
    down(r, &x);
  session_end(r, &x);
  return ok ? 0 : -1;
}

/* An exempt mailing-list delivery is recorded where the charges are;
   with Redis down, in the local counters that stand in for it (nothing
   waits on an exempt message) and in the ledger, which adds it to Redis
   with the charges once Redis answers again. Whatever the fallback: the
   delivery is made under either. */
static int r_listed(redis_store *r, obspam__charge *ch) {
  int rc;

  pthread_mutex_lock(&r->slock);
  if (ch->t < r->newest)
    ch->t = r->newest;
  else if (!ch->dry)
    r->newest = ch->t;
  pthread_mutex_unlock(&r->slock);
  if (ch->dry || redis_listed(r, ch) == 0)
    return OBSPAM_OK;
  rc = r->local->ops->charge(r->local, ch);
  if (rc == OBSPAM_OK)
    ledger_add(r, ch);
  return rc;
}

/* ---- the ledger of an outage ------------------------------------------- */

/* Keeps an accepted charge, or an exempt list delivery, made on the
   local counters while Redis did not answer, to be added to Redis when it
   answers again, with its marks. One in the same 5-second tick as the
   last one kept, on the same objects, is added to it; past LEDGER_MAX
   records it is counted as dropped. */
static void ledger_add(redis_store *r, const obspam__charge *ch) {
  char text[3 * 3 * KEY_MAX];
  const char *sub;
  ledger_entry *le;
  size_t len = 0;
  int64_t c, fw, ls;
  int i, part;

  if (ch->dry || ch->probe || ch->note || ch->refuser >= 0 || ch->n == 0)
    return;
  /* The marks count as the charge script counts them; an exempt
     delivery (marked a list) charges nothing. */
  c = ch->listed ? 0 : ch->c;
  fw = (ch->marks & OBSPAM__MARK_FORWARD) ? ch->c : 0;
  ls = (ch->marks & OBSPAM__MARK_LIST) ? ch->c : 0;
  sub = sub_of(ch->obj[0]);
  for (part = 0; part < 3; part++)
    for (i = 0; i < ch->n; i++) {
      const obspam__obj *o = ch->obj[i];

      len += part < 2 ? key_of(r, text + len, sub, o->kind, o->name, o->len,
                               part == 0 ? 'w' : 'h')
                      : member_of(text + len, sub, o->kind, o->name, o->len);
      text[len++] = '\0';
    }
  pthread_mutex_lock(&r->slock);
  le = r->ledger_tail;
  if (le != NULL && le->n == ch->n && le->len == len &&
      le->t / 5 == ch->t / 5 && le->retention == ch->retention &&
      memcmp(le->text, text, len) == 0) {
    le->c += c;
    le->fw += fw;
    le->ls += ls;
    le->records++;
    r->ledger_n++;
    pthread_mutex_unlock(&r->slock);
    return;
  }
  pthread_mutex_unlock(&r->slock);
  le = malloc(sizeof(*le) + len);
  pthread_mutex_lock(&r->slock);
  if (le == NULL || r->ledger_n >= LEDGER_MAX) {
    r->ledger_dropped++;
    pthread_mutex_unlock(&r->slock);
    free(le);
    return;
  }
  le->next = NULL;
  le->t = ch->t;
  le->c = c;
  le->fw = fw;
  le->ls = ls;
  le->records = 1;
  le->retention = (int32_t)ch->retention;
  le->seq = r->ledger_seq++;
  le->n = (uint16_t)ch->n;
  le->len = (uint16_t)len;
  memcpy(le->text, text, len);
  if (r->ledger_tail != NULL)
    r->ledger_tail->next = le;
  else
    r->ledger = le;
  r->ledger_tail = le;
  r->ledger_n++;
  pthread_mutex_unlock(&r->slock);
}

/* The report index of the hour of the ledger entry le, into key. */
static void index_key(const redis_store *r, const ledger_entry *le, char *key) {
  snprintf(key, KEY_MAX, "%sidx:%lld", r->prefix,
           (long long)(le->t - le->t % 3600));
}

/* Appends to b the two commands that add the ledger entry le to Redis
   (lua_add, then the report index): 0, or -1 when out of memory. */
static int build_add(redis_store *r, const ledger_entry *le, batch *b) {
  const char *p = le->text, *key[9];
  char nums[8][24], hourkey[KEY_MAX], mark[KEY_MAX];
  cmd c;
  int i;

  for (i = 0; i < 3 * le->n; i++) {
    key[i] = p;
    p += strlen(p) + 1;
  }
  /* The mark: "P{sub:S}:ledger:NODE:SEQ", in the slot of the entry's
     keys (the prefix has no brace, so the first "}" ends the tag). */
  snprintf(mark, sizeof(mark), "%.*s:ledger:%s:%u",
           (int)(strchr(key[0], '}') - key[0] + 1), key[0], r->ledger_node,
           le->seq);
  memset(&c, 0, sizeof(c));
  args(&c, "EVALSHA");
  arg(&c, r->sha_add, 40);
  snprintf(nums[0], sizeof(nums[0]), "%d", 2 * le->n + 1);
  args(&c, nums[0]);
  for (i = 0; i < 2 * le->n; i++)
    args(&c, key[i]);
  args(&c, mark);
  snprintf(nums[1], sizeof(nums[1]), "%d", le->n);
  snprintf(nums[2], sizeof(nums[2]), "%lld", (long long)le->t);
  snprintf(nums[3], sizeof(nums[3]), "%lld", (long long)le->c);
  snprintf(nums[4], sizeof(nums[4]), "%d", WINDOW_TTL);
  snprintf(nums[5], sizeof(nums[5]), "%lld", (long long)le->retention);
  snprintf(nums[6], sizeof(nums[6]), "%lld", (long long)le->fw);
  snprintf(nums[7], sizeof(nums[7]), "%lld", (long long)le->ls);
  for (i = 1; i < 8; i++)
    args(&c, nums[i]);
  if (batch_add(b, &c) != 0)
    return -1;
  memset(&c, 0, sizeof(c));
  index_key(r, le, hourkey);
  args(&c, "SADD");
  args(&c, hourkey);
  for (i = 2 * le->n; i < 3 * le->n; i++)
    args(&c, key[i]);
  return batch_add(b, &c);
}

/* Appends to b, after the entries from head, the TTL of the report index
   of each hour they write, as build_charge sets it (an hour that only
   the ledger wrote would have none): once per hour, the entries being
   in time order. 0, or -1 when out of memory. */
static int build_index_ttls(redis_store *r, const ledger_entry *head,
                            batch *b) {
  const ledger_entry *le, *prev = NULL;
  char hourkey[KEY_MAX], ttl[24];
  cmd c;

  for (le = head; le != NULL; prev = le, le = le->next) {
    if (prev != NULL && prev->t / 3600 == le->t / 3600 &&
        prev->retention == le->retention)
      continue;
    memset(&c, 0, sizeof(c));
    index_key(r, le, hourkey);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)le->retention * 3600 + 3600);
    args(&c, "EXPIRE");
    args(&c, hourkey);
    args(&c, ttl);
    if (batch_add(b, &c) != 0)
      return -1;
  }
  return 0;
}

/* Sends up to REPLAY_MAX entries of the ledger on x, the oldest first.
   0 when Redis took them (or the ledger was empty): an entry whose script
   Redis refused (which only a key of another type could make) is counted
   as dropped rather than tried for ever. -1 when Redis did not answer:
   the entries are kept for the next try. */
static int replay(redis_store *r, session *x) {
  ledger_entry *head, *le, *last = NULL;
  redisReply **rp = NULL;
  batch b = {NULL, NULL, 0, 0};
  int n = 0, i, ncmd = 0, rc = -1;

  pthread_mutex_lock(&r->slock);
  head = r->ledger;
  for (le = head; le != NULL && n < REPLAY_MAX; le = le->next, n++)
    last = le;
  if (last != NULL) {
    r->ledger = last->next;
    if (r->ledger == NULL)
      r->ledger_tail = NULL;
    last->next = NULL;
  }
  pthread_mutex_unlock(&r->slock);
  if (n == 0)
    return 0;
  for (le = head; le != NULL; le = le->next)
    if (build_add(r, le, &b) != 0)
      break;
  if (le == NULL && build_index_ttls(r, head, &b) == 0 &&
      (rp = calloc((size_t)b.n, sizeof(*rp))) != NULL &&
      send_fmt(r, x, b.fmt, b.flen, b.n, rp) == 0) {
    rc = 0;
    ncmd = b.n;
  }
  batch_free(&b);
  pthread_mutex_lock(&r->slock);
  if (rc == 0) {
    /* Two commands an entry: its script, then its index. */
    for (i = 0; head != NULL; i += 2) {
      le = head;
      head = le->next;
      r->ledger_n -= le->records;
      if (rp[i]->type == REDIS_REPLY_ERROR)
        r->ledger_dropped += le->records;
      else
        r->ledger_replayed += le->records;
      free(le);
    }
  } else {
    /* Kept for the next try, before what was added meanwhile. */
    last->next = r->ledger;
    r->ledger = head;
    if (r->ledger_tail == NULL)
      r->ledger_tail = last;
  }
  pthread_mutex_unlock(&r->slock);
  if (rc == 0)
    free_replies(rp, ncmd);
  free(rp);
  return rc;
}

/* A reset (ch->reset) on Redis: one script, so that no decision of
   another server comes between emptying the windows and recording the
   floor of the day. 0, or -1 when Redis did not answer. */
/* Empties every window of the object named o at t in Redis, keeping its
   history: 0, or -1 when Redis does not answer. */
static int redis_reset(redis_store *r, const obspam__named *o, int64_t t,
                       int64_t retention) {
  char w[KEY_MAX], h[KEY_MAX], ts[24], rets[24];
  redisReply *rp;
  session x;
  cmd c;
  int ok;

  if (session_start(r, &x) != 0)
    return -1;
  memset(&c, 0, sizeof(c));
  args(&c, "EVALSHA");
  arg(&c, r->sha_reset, 40);
  args(&c, "2");
  arg(&c, w, key_of(r, w, o->sub, o->kind, o->name, o->len, 'w'));
  arg(&c, h, key_of(r, h, o->sub, o->kind, o->name, o->len, 'h'));
  snprintf(ts, sizeof(ts), "%lld", (long long)t);
  snprintf(rets, sizeof(rets), "%lld", (long long)retention);
  args(&c, ts);
  args(&c, rets);
  if (pipeline(r, &x, &c, 1, &rp) != 0) {
    session_end(r, &x);
    return -1;
  }
  ok = rp->type == REDIS_REPLY_INTEGER && rp->integer == 1;
  freeReplyObject(rp);
  if (!ok)
    down(r, &x);
  session_end(r, &x);
  return ok ? 0 : -1;
}

/* The Redis half of a reset, by name: *t moves forward to the newest time
   this store saw, as a decision's does. */
static int r_reset_named(obspam__store *s, const obspam__named *o, int64_t *t,
                         int64_t retention) {
  redis_store *r = (redis_store *)s;

  pthread_mutex_lock(&r->slock);
  if (*t < r->newest)
    *t = r->newest;
  else
    r->newest = *t;
  pthread_mutex_unlock(&r->slock);
  return redis_reset(r, o, *t, retention) == 0 ? OBSPAM_OK : OBSPAM_EUNAVAIL;
}

/* A reset must reach every server: with Redis down it fails
   (OBSPAM_EUNAVAIL) and changes nothing, instead of emptying only this
   server's stand-in counters. Once Redis has it, the local counters
   reset too (not journaled, as no decision on Redis is), so that a
   fallback later does not refuse on what came before; that reset
   failing for memory only leaves the stand-in as it was. */
static int r_reset(redis_store *r, obspam__charge *ch) {
  void (*record)(void *, const obspam__charge *) = ch->record;
  const obspam__obj *o = ch->obj[0];
  obspam__named on = {o->kind, sub_of(o), o->name, o->len};

  if (r_reset_named(&r->base, &on, &ch->t, ch->retention) != OBSPAM_OK)
    return OBSPAM_EUNAVAIL;
  ch->record = NULL;
  (void)r->local->ops->charge(r->local, ch);
  ch->record = record;
  return OBSPAM_OK;
}

/* The charges ch[0..n) (no reset among them) in one exchange with Redis:
   every command of every charge in one write, the replies read together.
   ok[i] is set for each charge that Redis made and answered; notes and
   exempt list deliveries are the caller's. */
static void redis_charges(redis_store *r, obspam__charge *const *ch, int n,
                          uint8_t *ok) {
  int *first = NULL, i, k;
  redisReply **rp = NULL;
  batch b = {NULL, NULL, 0, 0};
  session x;

  if (n <= 0)
    return;
  memset(ok, 0, (size_t)n);
  if (session_start(r, &x) != 0)
    return;
  first = malloc((size_t)n * sizeof(*first));
  for (i = 0; first != NULL && i < n; i++) {
    first[i] = b.n;
    if (!ch[i]->note && !ch[i]->listed && build_charge(r, ch[i], &b) < 0)
      break;
  }
  if (first != NULL && i == n && b.n > 0 &&
      (rp = calloc((size_t)b.n, sizeof(*rp))) != NULL &&
      send_fmt(r, &x, b.fmt, b.flen, b.n, rp) == 0) {
    for (i = 0; i < n; i++) {
      if (ch[i]->note || ch[i]->listed)
        continue;
      if (parse_charge(ch[i], rp[first[i]]) != 0) {
        /* Not the answer of the script: Redis is not the one expected. */
        down(r, &x);
        break;
      }
      ok[i] = 1;
    }
    for (k = 0; k < b.n; k++)
      freeReplyObject(rp[k]);
  }
  session_end(r, &x);
  free(rp);
  free(first);
  batch_free(&b);
}

/* The charges ch[0..n), in order, as n calls of charge would make them:
   on Redis in one exchange; those Redis did not answer on the local
   counters (kept in the ledger), or failed with OBSPAM_EUNAVAIL
   (store-fallback defer). */
static int r_charge_many(obspam__store *s, obspam__charge *const *ch, int n,
                         int *done) {
  redis_store *r = (redis_store *)s;
  uint8_t small[64], *ok = small;
  int i, rc = OBSPAM_OK, reset = 0;

  *done = 0;
  if (n == 1 && ch[0]->listed)
    return r_listed(r, ch[0]);
  for (i = 0; i < n; i++)
    reset |= ch[i]->reset;
  if (reset && n == 1)
    return r_reset(r, ch[0]);
  if (reset) {
    /* A reset is its own script, made once Redis has every decision
       before it: one charge at a time. */
    for (; *done < n; ++*done)
      if ((rc = r_charge(s, ch[*done])) != OBSPAM_OK)
        break;
    return rc;
  }
  if (n > (int)sizeof(small) && (ok = malloc((size_t)n)) == NULL)
    return OBSPAM_ENOMEM;
  pthread_mutex_lock(&r->slock);
  for (i = 0; i < n; i++) {
    obspam__charge *c = ch[i];

    if (c->note)
      continue;
    if (c->timeout_ms > 0)
      r->timeout_ms = c->timeout_ms;
    if (c->t < r->newest)
      c->t = r->newest;
    else if (!c->dry)
      r->newest = c->t;
  }
  pthread_mutex_unlock(&r->slock);
  redis_charges(r, ch, n, ok);
  for (i = 0; i < n; i++, ++*done) {
    obspam__charge *c = ch[i];

    if (c->note)
      continue; /* Redis keeps no rows of scripts charged to nobody */
    if (c->listed) {
      /* An exempt list delivery changes no window, so no decision of the
         batch depends on it: its own commands, after the batch's. */
      if ((rc = r_listed(r, c)) != OBSPAM_OK)
        break;
      continue;
    }
    if (ok[i]) {
      /* Notices come from each node's own notification periods: account
         the decision there (allocation failure only costs a notice). */
      if (!c->dry) {
        c->notify_only = 1;
        (void)r->local->ops->charge(r->local, c);
        c->notify_only = 0;
      }
      continue;
    }
    if (!c->dry) {
      pthread_mutex_lock(&r->slock);
      r->fallbacks++;
      pthread_mutex_unlock(&r->slock);
    }
    if (c->defer) {
      rc = OBSPAM_EUNAVAIL;
      break;
    }
    if ((rc = r->local->ops->charge(r->local, c)) != OBSPAM_OK)
      break;
    ledger_add(r, c);
  }
  if (ok != small)
    free(ok);
  return rc;
}

static int r_charge(obspam__store *s, obspam__charge *ch) {
  obspam__charge *one[1];
  int done;

  one[0] = ch;
  return r_charge_many(s, one, 1, &done);
}

/* The EVALSHA of lua_read for the object kind:name of subscription sub
   into c, with its keys in w and h and its numbers in nows and rets. */
static void read_cmd(const redis_store *r, cmd *c, const obspam__named *o,
                     char *w, char *h, char *nows, char *rets, int64_t now,
                     int64_t retention) {
  memset(c, 0, sizeof(*c));
  args(c, "EVALSHA");
  arg(c, r->sha_read, 40);
  args(c, "2");
  arg(c, w, key_of(r, w, o->sub, o->kind, o->name, o->len, 'w'));
  arg(c, h, key_of(r, h, o->sub, o->kind, o->name, o->len, 'h'));
  snprintf(nows, 24, "%lld", (long long)now);
  snprintf(rets, 24, "%lld", (long long)retention);
  args(c, nows);
  args(c, rets);
}

/* A reply of lua_read into out: 0, or -1 when it is not one. */
static int parse_reading(const redisReply *rp, obspam__reading *out) {
  if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 11)
    return -1;
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
  return 0;
}

/* The time a read is made at: never before the newest this store saw,
   as the decisions count. */
static int64_t read_time(redis_store *r, int64_t now) {
  pthread_mutex_lock(&r->slock);
  if (now < r->newest)
    now = r->newest;
  pthread_mutex_unlock(&r->slock);
  return now;
}

static void r_read(obspam__store *s, const obspam__obj *o, int64_t now,
                   int64_t retention, obspam__reading *out) {
  redis_store *r = (redis_store *)s;
  char w[KEY_MAX], h[KEY_MAX], nows[24], rets[24];
  obspam__named on = {o->kind, sub_of(o), o->name, o->len};
  cmd c;
  redisReply *rp;
  session x;

  now = read_time(r, now);
  if (session_start(r, &x) != 0)
    goto local;
  read_cmd(r, &c, &on, w, h, nows, rets, now, retention);
  if (pipeline(r, &x, &c, 1, &rp) == 0) {
    int bad = parse_reading(rp, out);

    freeReplyObject(rp);
    if (!bad) {
      session_end(r, &x);
      return;
    }
    down(r, &x);
  }
  session_end(r, &x);
local:
  r->local->ops->read(r->local, o, now, retention, out);
}

/* Reads of many objects go to Redis READ_BATCH at a time, each batch one
   write of pipelined scripts and one wait for their replies. */
#define READ_BATCH 256

/* One batch of reads on session x: 0, or -1 (out of memory, or Redis
   does not answer: then it is called down). */
static int read_batch(redis_store *r, session *x, const obspam__named *v,
                      size_t n, int64_t now, int64_t retention,
                      obspam__reading *out) {
  char w[KEY_MAX], h[KEY_MAX], nows[24], rets[24];
  batch b = {NULL, NULL, 0, 0};
  redisReply *rp[READ_BATCH];
  size_t i;
  int rc = -1;

  for (i = 0; i < n; i++) {
    cmd c;

    /* The command is formatted at once: the key buffers serve the next. */
    read_cmd(r, &c, &v[i], w, h, nows, rets, now, retention);
    if (batch_add(&b, &c) != 0)
      break;
  }
  if (i == n && send_fmt(r, x, b.fmt, b.flen, (int)n, rp) == 0) {
    for (i = 0; i < n; i++)
      if (parse_reading(rp[i], &out[i]) != 0)
        break;
    rc = i == n ? 0 : -1;
    free_replies(rp, (int)n);
    if (rc != 0)
      down(r, x);
  }
  batch_free(&b);
  return rc;
}

static int r_read_named(obspam__store *s, const obspam__named *v, size_t n,
                        int64_t now, int64_t retention, obspam__reading *out) {
  redis_store *r = (redis_store *)s;
  size_t at;
  session x;

  if (n == 0)
    return OBSPAM_OK;
  now = read_time(r, now);
  if (session_start(r, &x) != 0)
    return OBSPAM_EUNAVAIL;
  for (at = 0; at < n; at += READ_BATCH) {
    size_t k = n - at < READ_BATCH ? n - at : READ_BATCH;

    if (read_batch(r, &x, v + at, k, now, retention, out + at) != 0)
      break;
  }
  session_end(r, &x);
  return at >= n ? OBSPAM_OK : OBSPAM_EUNAVAIL;
}

static void r_use(obspam__store *s, int delta) {
  redis_store *r = (redis_store *)s;

  pthread_mutex_lock(&r->plock);
  r->users += delta;
  if (r->users == 0)
    pthread_cond_broadcast(&r->pcond);
  pthread_mutex_unlock(&r->plock);
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
  if (call1(r, &c, &rp) == 0)
    freeReplyObject(rp);
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

/* History for the object named o, or the script path when o is NULL:
   OBSPAM_OK, OBSPAM_ENOTFOUND (an unknown script), OBSPAM_ENOMEM, or
   OBSPAM_EUNAVAIL when Redis does not answer. */
static int r_history_named(obspam__store *s, const obspam__named *o,
                           const char *script, size_t script_len, int64_t from,
                           int64_t to, int64_t retention, obspam__hour **out,
                           size_t *n) {
  redis_store *r = (redis_store *)s;
  char key[KEY_MAX], sub[OBSPAM_NAME_MAX + 1];
  int64_t cutoff;
  redisReply *rp;
  cmd c;
  int rc;

  pthread_mutex_lock(&r->slock);
  cutoff = obspam__hour_cutoff(obspam__hour_of(r->newest), retention);
  pthread_mutex_unlock(&r->slock);
  if (o == NULL) {
    /* A script: under the subscription it was last charged to. */
    memset(&c, 0, sizeof(c));
    snprintf(key, sizeof(key), "%sscripts", r->prefix);
    args(&c, "HGET");
    args(&c, key);
    arg(&c, script, script_len);
    if (call1(r, &c, &rp) != 0)
      return OBSPAM_EUNAVAIL;
    if (rp->type != REDIS_REPLY_STRING || rp->len > OBSPAM_NAME_MAX) {
      freeReplyObject(rp);
      *out = NULL;
      *n = 0;
      return OBSPAM_ENOTFOUND;
    }
    memcpy(sub, rp->str, rp->len);
    sub[rp->len] = '\0';
    freeReplyObject(rp);
  } else {
    snprintf(sub, sizeof(sub), "%s", o->sub);
  }
  memset(&c, 0, sizeof(c));
  args(&c, "HGETALL");
  if (o == NULL)
    arg(&c, key, key_of(r, key, sub, OBSPAM_SCRIPT, script, script_len, 'h'));
  else
    arg(&c, key, key_of(r, key, sub, o->kind, o->name, o->len, 'h'));
  if (call1(r, &c, &rp) != 0)
    return OBSPAM_EUNAVAIL;
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
  return rc;
}

static int r_history(obspam__store *s, const obspam__obj *o, const char *script,
                     size_t script_len, int64_t from, int64_t to,
                     int64_t retention, obspam__hour **out, size_t *n) {
  redis_store *r = (redis_store *)s;
  obspam__named on;
  int rc;

  if (o != NULL) {
    on.kind = o->kind;
    on.sub = sub_of(o);
    on.name = o->name;
    on.len = o->len;
  }
  rc = r_history_named(s, o != NULL ? &on : NULL, script, script_len, from, to,
                       retention, out, n);
  if (rc != OBSPAM_EUNAVAIL)
    return rc;
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
   in; the hours asked READ_BATCH at a time, in one exchange each.
   OBSPAM_OK, OBSPAM_ENOMEM, or OBSPAM_EUNAVAIL when Redis does not
   answer. */
static int indexed_objects(redis_store *r, session *x, int64_t first,
                           int64_t last, strlist *out) {
  char key[KEY_MAX];
  redisReply *rp[READ_BATCH];
  int64_t hour = first;
  int rc = OBSPAM_OK;

  while (hour <= last && rc == OBSPAM_OK) {
    batch b = {NULL, NULL, 0, 0};
    size_t i;
    int n, k;

    for (n = 0; hour <= last && n < READ_BATCH; n++, hour += 3600) {
      cmd c;

      memset(&c, 0, sizeof(c));
      snprintf(key, sizeof(key), "%sidx:%lld", r->prefix, (long long)hour);
      args(&c, "SMEMBERS");
      args(&c, key);
      if (batch_add(&b, &c) != 0)
        break;
    }
    if (n < READ_BATCH && hour <= last)
      rc = OBSPAM_ENOMEM;
    else if (send_fmt(r, x, b.fmt, b.flen, n, rp) != 0)
      rc = OBSPAM_EUNAVAIL;
    batch_free(&b);
    if (rc != OBSPAM_OK)
      break;
    for (k = 0; k < n; k++) {
      for (i = 0; rc == OBSPAM_OK && rp[k]->type == REDIS_REPLY_ARRAY &&
                  i < rp[k]->elements;
           i++)
        rc = strlist_add(out, rp[k]->element[i]->str);
    }
    free_replies(rp, n);
  }
  strlist_unique(out);
  return rc;
}

/* The index member "KIND\tSUB\tNAME" as a row (cut at the second tab:
   row->name points into it) and the key of its history in key: 0, or -1
   for a member of another shape. */
static int member_row(const redis_store *r, char *member, obspam__row *row,
                      char **sub, char *key, size_t *klen) {
  char *kind_end, *tab;

  memset(row, 0, sizeof(*row));
  row->kind = (int)strtol(member, &kind_end, 10);
  if (*kind_end != '\t' || (tab = strchr(kind_end + 1, '\t')) == NULL)
    return -1;
  *sub = kind_end + 1;
  *tab = '\0';
  row->name = tab + 1;
  *klen = key_of(r, key, *sub, row->kind, row->name, strlen(row->name), 'h');
  return 0;
}

/* The report row of a member from its history hash rp: the sums of the
   object's hours after cutoff that overlap [from, to). *listed says
   whether the row belongs in the report. OBSPAM_OK or OBSPAM_ENOMEM. */
static int object_row(const redisReply *rp, const char *sub, int64_t cutoff,
                      int64_t from, int64_t to, int every, obspam__row *row,
                      int *listed) {
  obspam__hour *h;
  size_t nh, k;
  int rc;

  *listed = 0;
  rc = parse_hours(rp, cutoff, from, to, row->kind == OBSPAM_SCRIPT ? 0 : 3600,
                   &h, &nh);
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

/* The rows of members m[0..n) (n <= READ_BATCH) into rows, *k of them
   listed so far: their history hashes in one exchange. */
static int rows_batch(redis_store *r, session *x, char **m, size_t n,
                      int64_t cutoff, int64_t from, int64_t to, int every,
                      obspam__row *rows, size_t *k) {
  char key[KEY_MAX], *sub[READ_BATCH];
  redisReply *rp[READ_BATCH];
  obspam__row row[READ_BATCH];
  batch b = {NULL, NULL, 0, 0};
  size_t i, nb = 0;
  int rc = OBSPAM_OK, listed;

  for (i = 0; i < n; i++) {
    cmd c;
    size_t klen;

    if (member_row(r, m[i], &row[nb], &sub[nb], key, &klen) != 0)
      continue;
    memset(&c, 0, sizeof(c));
    args(&c, "HGETALL");
    arg(&c, key, klen);
    if (batch_add(&b, &c) != 0) {
      rc = OBSPAM_ENOMEM;
      break;
    }
    nb++;
  }
  if (rc == OBSPAM_OK && nb > 0 &&
      send_fmt(r, x, b.fmt, b.flen, (int)nb, rp) != 0)
    rc = OBSPAM_EUNAVAIL;
  batch_free(&b);
  if (rc != OBSPAM_OK)
    return rc;
  for (i = 0; i < nb && rc == OBSPAM_OK; i++) {
    rc = object_row(rp[i], sub[i], cutoff, from, to, every, &row[i], &listed);
    if (rc == OBSPAM_OK && listed)
      rows[(*k)++] = row[i];
  }
  free_replies(rp, (int)nb);
  return rc;
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
   OBSPAM_EUNAVAIL when Redis does not answer. On session x. A node that
   has decided nothing since it started has seen no time yet, but the
   other nodes' counts are in Redis: the end of the period stands in. */
static int redis_report(redis_store *r, session *x, int64_t seen, int64_t from,
                        int64_t to, int64_t retention, int every,
                        obspam__row **out, size_t *n) {
  int64_t newest = seen > 0 ? seen : to - 1;
  int64_t cutoff = obspam__hour_cutoff(obspam__hour_of(newest), retention);
  int64_t first = obspam__hour_of(from > cutoff ? from : cutoff);
  int64_t last = obspam__hour_of(to - 1 < newest ? to - 1 : newest);
  strlist members = {NULL, 0, 0};
  obspam__row *rows = NULL;
  size_t i, k = 0;
  int rc = OBSPAM_OK;

  if (to > from)
    rc = indexed_objects(r, x, first, last, &members);
  if (rc == OBSPAM_OK && members.n > 0 &&
      (rows = calloc(members.n, sizeof(*rows))) == NULL)
    rc = OBSPAM_ENOMEM;
  for (i = 0; rc == OBSPAM_OK && i < members.n; i += READ_BATCH)
    rc = rows_batch(r, x, members.v + i,
                    members.n - i < READ_BATCH ? members.n - i : READ_BATCH,
                    cutoff, from, to, every, rows, &k);
  if (rc == OBSPAM_OK && (rc = pack_rows(rows, k, out)) == OBSPAM_OK) {
    rows = NULL;
    *n = k;
  }
  free(rows);
  strlist_free(&members);
  return rc;
}

static int r_report_shared(obspam__store *s, int64_t from, int64_t to,
                           int64_t retention, int every, obspam__row **out,
                           size_t *n) {
  redis_store *r = (redis_store *)s;
  int64_t seen;
  session x;
  int rc = OBSPAM_EUNAVAIL;

  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&r->slock);
  seen = r->newest;
  pthread_mutex_unlock(&r->slock);
  if (session_start(r, &x) == 0) {
    rc = redis_report(r, &x, seen, from, to, retention, every, out, n);
    session_end(r, &x);
  }
  return rc;
}

static int r_report(obspam__store *s, int64_t from, int64_t to,
                    int64_t retention, int every, obspam__row **out,
                    size_t *n) {
  redis_store *r = (redis_store *)s;
  int rc = r_report_shared(s, from, to, retention, every, out, n);

  if (rc != OBSPAM_EUNAVAIL)
    return rc;
  /* Redis does not answer: what this server saw itself. */
  return r->local->ops->report(r->local, from, to, retention, every, out, n);
}

static int r_notices(obspam__store *s, int64_t now, obspam__pending **out) {
  redis_store *r = (redis_store *)s;

  return r->local->ops->notices(r->local, now, out);
}

/* ---- housekeeping ------------------------------------------------------ */

/* Deletes the n keys argv[1..n] (argv[0] is "DEL") in one exchange on
   session x: 0, or -1 (out of memory, or Redis does not answer). */
static int del_keys(redis_store *r, session *x, const char **argv,
                    const size_t *len, int n) {
  char *fmt = NULL;
  long long flen = redisFormatCommandArgv(&fmt, n + 1, argv, len);
  redisReply *rp;
  int ok = 0;

  if (flen >= 0 && send_fmt(r, x, &fmt, &flen, 1, &rp) == 0) {
    ok = rp->type == REDIS_REPLY_INTEGER;
    freeReplyObject(rp);
  }
  if (fmt != NULL)
    redisFreeCommand(fmt);
  return ok ? 0 : -1;
}

/* Deletes the queued keys of dropped objects, GONE_BATCH in one
   exchange, while there are some; waits RETRY_MS when Redis does not
   answer. Asked to stop, it finishes the queue while Redis answers. */
static void *housekeeper(void *arg) {
  redis_store *r = arg;

  pthread_mutex_lock(&r->hlock);
  for (;;) {
    const char *argv[GONE_BATCH + 1];
    size_t len[GONE_BATCH + 1];
    gone_key *head, *g, *last = NULL;
    session x;
    int n = 0, ok = 0;

    while (r->gone == NULL && !r->hk_stop)
      pthread_cond_wait(&r->hcond, &r->hlock);
    if (r->gone == NULL)
      break;
    head = r->gone;
    argv[0] = "DEL";
    len[0] = 3;
    for (g = head; g != NULL && n < GONE_BATCH; g = g->next) {
      argv[++n] = g->key;
      len[n] = strlen(g->key);
      last = g;
    }
    r->gone = last->next;
    last->next = NULL;
    r->gone_n -= n;
    pthread_mutex_unlock(&r->hlock);
    if (session_start(r, &x) == 0) {
      ok = del_keys(r, &x, argv, len, n) == 0;
      session_end(r, &x);
    }
    pthread_mutex_lock(&r->hlock);
    if (ok || r->hk_stop) {
      if (ok)
        r->gone_deleted += n;
      else
        r->gone_dropped += n;
      while (head != NULL) {
        g = head;
        head = g->next;
        free(g);
      }
    } else {
      struct timespec until;
      int64_t t = mono_ms() + RETRY_MS;

      last->next = r->gone;
      r->gone = head;
      r->gone_n += n;
      until.tv_sec = (time_t)(t / 1000);
      until.tv_nsec = (long)(t % 1000) * 1000000L;
      while (!r->hk_stop &&
             pthread_cond_timedwait(&r->hcond, &r->hlock, &until) == 0)
        ;
    }
  }
  /* Stopped with Redis down: what is left expires with its TTL. */
  while (r->gone != NULL) {
    gone_key *g = r->gone;

    r->gone = g->next;
    r->gone_dropped++;
    free(g);
  }
  r->gone_n = 0;
  pthread_mutex_unlock(&r->hlock);
  return NULL;
}

/* Queues a key for the housekeeper, under hlock; starts it at the
   first. */
static void gone_put(redis_store *r, const char *key, size_t len) {
  gone_key *g;

  if (r->gone_n >= GONE_MAX || (g = malloc(sizeof(*g) + len + 1)) == NULL) {
    r->gone_dropped++;
    return;
  }
  memcpy(g->key, key, len);
  g->key[len] = '\0';
  g->next = r->gone;
  r->gone = g;
  r->gone_n++;
}

/* Queues the two keys of each of the n objects of v for the
   housekeeper, which it starts at the first. */
static void gone_named(redis_store *r, const obspam__named *v, size_t n) {
  char key[KEY_MAX];
  size_t i;

  pthread_mutex_lock(&r->hlock);
  if (!r->hk_started) {
    if (pthread_create(&r->hk, NULL, housekeeper, r) != 0) {
      r->gone_dropped += 2 * (int64_t)n;
      pthread_mutex_unlock(&r->hlock);
      return;
    }
    r->hk_started = 1;
  }
  for (i = 0; i < n; i++) {
    gone_put(r, key,
             key_of(r, key, v[i].sub, v[i].kind, v[i].name, v[i].len, 'w'));
    gone_put(r, key,
             key_of(r, key, v[i].sub, v[i].kind, v[i].name, v[i].len, 'h'));
  }
  pthread_cond_signal(&r->hcond);
  pthread_mutex_unlock(&r->hlock);
}

/* A reload dropped o (or moved it under another subscription, whose hash
   tag its keys no longer have): its two keys are deleted in the
   background, so that a reload never waits for Redis. */
static void r_gone(obspam__store *s, const obspam__obj *o) {
  obspam__named on = {o->kind, sub_of(o), o->name, o->len};

  gone_named((redis_store *)s, &on, 1);
}

/* The objects removed by obspam_remove, deleted before it returns (an
   object removed and added again starts from zero on every node), but
   without the engine's lock: FORGET_BATCH objects, two keys each, in one
   exchange. What Redis does not take now goes to the housekeeper. */
static void r_forget_named(obspam__store *s, const obspam__named *v, size_t n) {
  redis_store *r = (redis_store *)s;
  const char *argv[2 * FORGET_BATCH + 1];
  size_t len[2 * FORGET_BATCH + 1], at = 0;
  char(*keys)[KEY_MAX];
  session x;

  if (n == 0)
    return;
  keys = malloc(2 * FORGET_BATCH * sizeof(*keys));
  if (keys != NULL && session_start(r, &x) == 0) {
    argv[0] = "DEL";
    len[0] = 3;
    for (; at < n; at += FORGET_BATCH) {
      size_t i, k = n - at < FORGET_BATCH ? n - at : FORGET_BATCH;

      for (i = 0; i < k; i++) {
        const obspam__named *o = &v[at + i];

        argv[2 * i + 1] = keys[2 * i];
        len[2 * i + 1] =
            key_of(r, keys[2 * i], o->sub, o->kind, o->name, o->len, 'w');
        argv[2 * i + 2] = keys[2 * i + 1];
        len[2 * i + 2] =
            key_of(r, keys[2 * i + 1], o->sub, o->kind, o->name, o->len, 'h');
      }
      if (del_keys(r, &x, argv, len, (int)(2 * k)) != 0)
        break;
    }
    session_end(r, &x);
  }
  free(keys);
  if (at < n)
    gone_named(r, v + at, n - at);
}

/* The local store is the engine's: it outlives this one. The
   housekeeper finishes its queue first while Redis answers. */
static void r_destroy(obspam__store *s) {
  redis_store *r = (redis_store *)s;
  ledger_entry *le;
  int i;

  /* A reader by name took the store before it was replaced, and reads
     without the engine's lock: it finishes first. The wake-up may be a
     give() meant for a caller that waits for a connection: passed on. */
  pthread_mutex_lock(&r->plock);
  while (r->users > 0) {
    pthread_cond_wait(&r->pcond, &r->plock);
    pthread_cond_signal(&r->pcond);
  }
  pthread_mutex_unlock(&r->plock);
  pthread_mutex_lock(&r->hlock);
  r->hk_stop = 1;
  pthread_cond_signal(&r->hcond);
  pthread_mutex_unlock(&r->hlock);
  if (r->hk_started)
    pthread_join(r->hk, NULL);
  for (i = 0; i < r->npool; i++)
    if (r->conns[i].c != NULL)
      redisFree(r->conns[i].c);
  while ((le = r->ledger) != NULL) {
    r->ledger = le->next;
    free(le);
  }
  free(r->conns);
  free(r->free);
  pthread_mutex_destroy(&r->plock);
  pthread_cond_destroy(&r->pcond);
  pthread_mutex_destroy(&r->slock);
  pthread_mutex_destroy(&r->hlock);
  pthread_cond_destroy(&r->hcond);
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

  pthread_mutex_lock(&r->slock);
  out[0] = 1;
  out[1] = r->up;
  out[2] = r->episodes;
  out[3] = r->fallbacks;
  pthread_mutex_unlock(&r->slock);
}

static void r_backlog(obspam__store *s, int64_t out[6]) {
  redis_store *r = (redis_store *)s;

  pthread_mutex_lock(&r->slock);
  out[0] = r->ledger_n;
  out[1] = r->ledger_replayed;
  out[2] = r->ledger_dropped;
  pthread_mutex_unlock(&r->slock);
  pthread_mutex_lock(&r->hlock);
  out[3] = r->gone_n;
  out[4] = r->gone_deleted;
  out[5] = r->gone_dropped;
  pthread_mutex_unlock(&r->hlock);
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
                                            .charge_many = r_charge_many,
                                            .same = r_same,
                                            .status = r_status,
                                            .gone = r_gone,
                                            .forget_named = r_forget_named,
                                            .history_named = r_history_named,
                                            .reset_named = r_reset_named,
                                            .backlog = r_backlog,
                                            .read_named = r_read_named,
                                            .use = r_use,
                                            .report_shared = r_report_shared};

/* Initialises the locks of r: 0, or -1 with none left initialised. */
static int locks_init(redis_store *r) {
  pthread_condattr_t ca;
  int ok;

  if (pthread_condattr_init(&ca) != 0)
    return -1;
  /* take() waits until a monotonic deadline. */
  ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
  if (ok && pthread_mutex_init(&r->plock, NULL) != 0)
    ok = 0;
  else if (ok && pthread_cond_init(&r->pcond, &ca) != 0) {
    pthread_mutex_destroy(&r->plock);
    ok = 0;
  } else if (ok && pthread_mutex_init(&r->slock, NULL) != 0) {
    pthread_cond_destroy(&r->pcond);
    pthread_mutex_destroy(&r->plock);
    ok = 0;
  } else if (ok && pthread_mutex_init(&r->hlock, NULL) != 0) {
    pthread_mutex_destroy(&r->slock);
    pthread_cond_destroy(&r->pcond);
    pthread_mutex_destroy(&r->plock);
    ok = 0;
  } else if (ok && pthread_cond_init(&r->hcond, &ca) != 0) {
    pthread_mutex_destroy(&r->hlock);
    pthread_mutex_destroy(&r->slock);
    pthread_cond_destroy(&r->pcond);
    pthread_mutex_destroy(&r->plock);
    ok = 0;
  }
  pthread_condattr_destroy(&ca);
  return ok ? 0 : -1;
}

/* Names r's ledger marks apart from every other store's, on this host or
   another: 64 random bits, or, when the kernel gives none, the time, the
   process and the store's address. */
static void ledger_node(redis_store *r) {
  uint64_t v = 0;

  if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
        ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)r;
  }
  snprintf(r->ledger_node, sizeof(r->ledger_node), "%016llx",
           (unsigned long long)v);
}

obspam__store *obspam__redis_store_new(const char *uri, const char *prefix,
                                       obspam__store *local) {
  redis_store *r;
  int i;

  if (prefix == NULL)
    prefix = "obspam:";
  if (strlen(prefix) > OBSPAM__PREFIX_MAX)
    return NULL;
  r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  if (obspam__store_addr_parse(uri, &r->addr) != NULL || locks_init(r) != 0) {
    free(r);
    return NULL;
  }
  r->npool = r->addr.pool;
  r->uri = strdup(uri);
  r->prefix = strdup(prefix);
  r->conns = calloc((size_t)r->npool, sizeof(*r->conns));
  r->free = calloc((size_t)r->npool, sizeof(*r->free));
  if (r->uri == NULL || r->prefix == NULL || r->conns == NULL ||
      r->free == NULL) {
    r->npool = 0;
    r_destroy(&r->base);
    return NULL;
  }
  for (i = 0; i < r->npool; i++)
    r->free[i] = &r->conns[r->npool - 1 - i];
  r->nfree = r->npool;
  r->base.ops = &redis_ops;
  r->local = local;
  r->up = 1;
  r->timeout_ms = 200;
  ledger_node(r);
  return &r->base;
}

#endif
