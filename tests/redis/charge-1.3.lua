-- SPDX-License-Identifier: MIT
-- The charge script of libobspam 1.3.0 (lua_charge of src/store_redis.c,
-- its comments left out), kept so that tests/redis/cluster_test.c mixed can
-- charge as a node of 1.3 does during a rolling upgrade.
local n=tonumber(ARGV[1]) local t=tonumber(ARGV[2])
local c=tonumber(ARGV[3]) local forbid=ARGV[4]=='1'
local probe=ARGV[5]=='1' local dry=ARGV[6]=='1'
local ret=tonumber(ARGV[7]) local script=ARGV[8]=='1'
local wttl=tonumber(ARGV[9]) local overcap=ARGV[10]=='1'
local keep=math.max(ret,24)
local tick=math.floor(t/5) local minute=math.floor(t/60)
local hnum=math.floor(t/3600) local hour=hnum*3600
local secs={60,3600,86400}
local function wait_of(b,cur,nb,size,sent,limit)
  if c>limit then return -1 end
  local k=cur-nb+1
  while sent+c>limit do sent=sent-(b[k] or 0) k=k+1 end
  return (k+nb-1)*size-t
end
local function exceeds(sent,limit) return limit>=0 and sent+c>limit end
local function buckets(all,letter)
  local b={}
  for j=1,#all,2 do
    local f=all[j]
    if string.byte(f,1)==letter then
      b[tonumber(string.sub(f,2))]=tonumber(all[j+1]) end
  end
  return b
end
local function day_floor(rt,rb)
  rt=tonumber(rt)
  if not rt then return 0,0 end
  return math.floor(rt/3600),tonumber(rb) or 0
end
local function longer(a,b)
  if a==-1 then return b~=-1 end
  return b~=-1 and a>b
end
local count,wait,over,win={},{},{},{}
local refuser,retry=0,0
for i=1,n do
  local lim={} for w=1,3 do lim[w]=tonumber(ARGV[7+3*i+w]) end
  local all=redis.call('HGETALL',KEYS[i])
  local stale,bd,sm,sh,sd={},{},0,0,0
  for j=1,#all,2 do
    local f=all[j] local w=string.byte(f,1)
    local k=tonumber(string.sub(f,2))
    if w==109 then
      if k<=tick-12 then stale[#stale+1]=f else sm=sm+all[j+1] end
    elseif k<=minute-60 then stale[#stale+1]=f
    elseif w==115 then sh=sh+all[j+1] end
  end
  if not dry and #stale>0 then
    redis.call('HDEL',KEYS[i],unpack(stale)) end
  if lim[3]>=0 then
    local f={}
    for h=hnum-23,hnum do f[#f+1]=string.format('%d:s',h*3600) end
    f[25]='rt' f[26]='rb'
    local got=redis.call('HMGET',KEYS[n+i],unpack(f))
    local rh,rb=day_floor(got[25],got[26])
    for j=1,24 do
      local h=hnum-24+j local v=tonumber(got[j])
      if v and h>=rh then
        if h==rh then v=v-rb end
        bd[h]=v sd=sd+v
      end
    end
  end
  count[i]={sm,sh,sd}
  wait[i]={0,0,0}
  if exceeds(sm,lim[1]) then
    wait[i][1]=wait_of(buckets(all,109),tick,12,5,sm,lim[1]) end
  if exceeds(sh,lim[2]) then
    wait[i][2]=wait_of(buckets(all,115),minute,60,60,sh,lim[2]) end
  if exceeds(sd,lim[3]) then
    wait[i][3]=wait_of(bd,hnum,24,3600,sd,lim[3]) end
  local best,bw=0,0
  for w=3,1,-1 do
    if wait[i][w]~=0 and (best==0 or longer(wait[i][w],best)) then
      best=wait[i][w] bw=secs[w] end
  end
  if i==n and overcap and (best==0 or longer(-1,best)) then
    best=-1 bw=0 end
  over[i]=best~=0 win[i]=bw
  if best~=0 and (refuser==0 or longer(best,retry)) then
    refuser=i retry=best end
end
if forbid then
  refuser=1
  for i=1,n do over[i]=i==1 win[i]=0 end
end
if not dry then
  local hs=string.format('%d',hour) local ts=string.format('%d',t)
  local function hist(key,refd,x,w)
    if redis.call('HEXISTS',key,hs..':s')==0 and
      redis.call('HEXISTS',key,hs..':r')==0 then
      local cutoff=hour-(keep-1)*3600 local old,live={},false
      for _,f in ipairs(redis.call('HKEYS',key)) do
        local h=tonumber(string.match(f,'^(%d+):'))
        if h and h<cutoff then old[#old+1]=f end
        if h and h>=cutoff then live=true end
      end
      if #old>0 then redis.call('HDEL',key,unpack(old)) end
      local rt=tonumber(redis.call('HGET',key,'rt'))
      if rt and not live and rt-rt%3600<cutoff then
        redis.call('HDEL',key,'rt','rb') end
    end
    if refd then
      redis.call('HINCRBY',key,hs..':r',1)
      redis.call('HSET',key,'lr',ts)
      if x then redis.call('HINCRBY',key,hs..':x',1) end
      if w then
        redis.call('HSETNX',key,hs..':f',ts)
        redis.call('HSET',key,hs..':l',ts,hs..':w',w)
      end
    else redis.call('HINCRBY',key,hs..':s',c) end
    redis.call('EXPIRE',key,keep*3600+3600)
  end
  local ms=string.format('%d',minute)
  local ks=string.format('%d',tick)
  if refuser>0 then
    for i=1,n do
      redis.call('HINCRBY',KEYS[i],'r'..ms,1)
      if over[i] then
        redis.call('HINCRBY',KEYS[i],'x'..ms,1)
        hist(KEYS[n+i],true,true,win[i])
      else hist(KEYS[n+i],true,false,nil) end
    end
  elseif not probe then
    for i=1,n do
      redis.call('HINCRBY',KEYS[i],'s'..ms,c)
      redis.call('HINCRBY',KEYS[i],'m'..ks,c)
      hist(KEYS[n+i],false)
    end
  end
  for i=1,n do redis.call('EXPIRE',KEYS[i],wttl) end
  if script and (refuser>0 or not probe) then
    hist(KEYS[2*n+1],refuser>0,false,0)
  end
end
local out={}
for _,v in ipairs({count,wait}) do
  for i=1,3 do for w=1,3 do out[#out+1]=v[i] and v[i][w] or 0 end end
end
return out
