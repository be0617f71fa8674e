"""The queue's Lua scripts: every state change of a job happens atomically inside Redis.

Every script gets the same KEYS (``filmstrip.keys.QueueKeys.scripts``) and ARGV[1..5]; its
own arguments start at ARGV[6]:

- KEYS[1..10]: the work streams of priority bands 1..10; KEYS[11] delayed zset,
  KEYS[12] completed zset, KEYS[13] failed zset, KEYS[14] dead-letter stream,
  KEYS[15] paused flag, KEYS[16] limiter counter.
- ARGV[1]: job hash prefix, ARGV[2]: stats prefix, ARGV[3]: consumer group,
  ARGV[4] / ARGV[5]: the queue's default retention (``age_s:count``) for completed / failed.

Job hash fields: data, prio, att (max attempts), bo (backoff ms), made (attempts started),
(att, bo, roc, rof and made are only stored when they differ from the queue's defaults, which
keeps a waiting job to five fields),
state, eid (current stream entry id: the delivery token), ts/pt/ft (created, started,
finished ms, server clock), prog, stl (stalls), def (resource deferrals), roc/rof
(retention ``age_s:count``), err/code/cat (last error), dlq (dead-letter entry id),
leid (the delivery whose outcome was last applied: a settle sent again after its reply was
lost is told apart from one whose job was taken back).
Job ids are computed into keys from ARGV[1]; all share the queue's hash tag, so the scripts
stay on one Cluster slot.
"""

from __future__ import annotations

PRELUDE = r"""
local JP, SP, G, DEF_ROC, DEF_ROF = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local DELAYED, COMPLETED, FAILED, DLQ, PAUSED, LIMITER =
  KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16]

-- The server's clock in ms, as a number and as the string sent back to Redis: a number
-- passed to redis.call is formatted by printf each time, a cost the hot scripts notice.
local function now_ms()
  local t = redis.call('TIME')
  local s = t[1] .. string.sub('00000' .. t[2], -6, -4)
  return tonumber(s), s
end

local function enqueue(id, jk, band)
  local s = KEYS[band]
  if redis.call('EXISTS', s) == 0 then
    redis.call('XGROUP', 'CREATE', s, G, '0', 'MKSTREAM')
  end
  local eid = redis.call('XADD', s, '*', 'i', id)
  redis.call('HSET', jk, 'state', 'waiting', 'eid', eid)
  return eid
end

local function drop_job(id)
  local jk = JP .. id
  local dl = redis.call('HGET', jk, 'dlq')
  if dl and dl ~= '' then redis.call('XDEL', DLQ, dl) end
  redis.call('DEL', jk)
end

-- Record finished jobs in zkey under their retention ``age_s:count`` and trim the set once
-- per call; trimming is bounded so one call never does unbounded work.
local function retain(zkey, ids, spec, now, has_dlq, now_s)
  now_s = now_s or now
  if #ids == 0 then return end
  local sep = string.find(spec, ':', 1, true)
  local age = tonumber(string.sub(spec, 1, sep - 1))
  local count = tonumber(string.sub(spec, sep + 1))
  local drop = has_dlq and drop_job or function(id) redis.call('DEL', JP .. id) end
  if count == 0 then
    for i = 1, #ids do drop(ids[i]) end
    return
  end
  local zargs = {}
  for i = 1, #ids do
    zargs[2 * i - 1] = now_s
    zargs[2 * i] = ids[i]
  end
  redis.call('ZADD', zkey, unpack(zargs))
  if age > 0 then
    local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - age * 1000, 'LIMIT', 0, 1000)
    for i = 1, #old do drop(old[i]) end
    if #old > 0 then redis.call('ZREM', zkey, unpack(old)) end
  end
  if count > 0 then
    local excess = redis.call('ZCARD', zkey) - count
    if excess > 0 then
      if excess > 1000 then excess = 1000 end
      local old = redis.call('ZPOPMIN', zkey, excess)
      for i = 1, #old, 2 do drop(old[i]) end
    end
  end
end

local function bump_bucket(k, ttl, c, f, t)
  -- A bucket's first write is one whose running total equals its increment; set the TTL
  -- then (a later write that sees the same is harmless) instead of on every write.
  local first = false
  if c > 0 then first = redis.call('HINCRBY', k, 'c', c) == c end
  if f > 0 then first = redis.call('HINCRBY', k, 'f', f) == f or first end
  redis.call('HINCRBY', k, 't', t)
  if first then redis.call('EXPIRE', k, ttl) end
end

local function bump_stats(now, c, f, t)
  if c + f == 0 then return end
  bump_bucket(SP .. 'm:' .. math.floor(now / 60000), 7200, c, f, t)
  bump_bucket(SP .. 'h:' .. math.floor(now / 3600000), 8 * 86400, c, f, t)
end

local function dead_letter(id, jk, cat, code, msg, now)
  local d = redis.call('HMGET', jk, 'data', 'made', 'rof')
  local dl = redis.call('XADD', DLQ, '*', 'id', id, 'job', d[1], 'error', msg, 'code', code,
    'category', cat, 'attempts', d[2] or 0, 'failed_at', now)
  redis.call('HSET', jk, 'state', 'failed', 'eid', '', 'ft', now, 'err', msg, 'code', code,
    'cat', cat, 'dlq', dl)
  retain(FAILED, {id}, d[3] or DEF_ROF, now, true)
end

-- Turn a delivered stream entry into an active job; stale or cancelled entries are dropped.
local function activate(band, eid, id, now_s, out)
  local s = KEYS[band]
  local jk = JP .. id
  local d = redis.call('HMGET', jk, 'state', 'eid', 'data', 'made', 'att', 'def', 'bo')
  if d[1] ~= 'waiting' or d[2] ~= eid then
    redis.call('XACK', s, G, eid)
    redis.call('XDEL', s, eid)
    return 0
  end
  local made = tonumber(d[4] or 0) + 1
  redis.call('HSET', jk, 'state', 'active', 'made', made, 'pt', now_s, 'prog', '0')
  local n = #out
  out[n + 1] = id
  out[n + 2] = eid
  out[n + 3] = band
  out[n + 4] = d[3]
  out[n + 5] = made
  out[n + 6] = d[5] or ''
  out[n + 7] = d[6] or 0
  out[n + 8] = d[7] or ''
  return 1
end

-- Store a job once (dedupe by id) and make it waiting or delayed. Options equal to the
-- queue's defaults arrive as '' and are not stored.
local function add_job(id, data, prio, att, bo, delay, roc, rof, now)
  local jk = JP .. id
  local st = redis.call('HGET', jk, 'state')
  if st then return 0, st end
  prio = tonumber(prio)
  delay = tonumber(delay)
  local fields = {'data', data, 'prio', prio, 'ts', now}
  if att ~= '' then fields[#fields + 1] = 'att'; fields[#fields + 1] = att end
  if bo ~= '' then fields[#fields + 1] = 'bo'; fields[#fields + 1] = bo end
  if roc ~= '' then fields[#fields + 1] = 'roc'; fields[#fields + 1] = roc end
  if rof ~= '' then fields[#fields + 1] = 'rof'; fields[#fields + 1] = rof end
  if delay > 0 then
    fields[#fields + 1] = 'state'
    fields[#fields + 1] = 'delayed'
    redis.call('HSET', jk, unpack(fields))
    redis.call('ZADD', DELAYED, now + delay, id)
    return 1, 'delayed'
  end
  redis.call('HSET', jk, unpack(fields))
  enqueue(id, jk, prio)
  return 1, 'waiting'
end

local function promote(now_s)
  local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now_s, 'LIMIT', 0, 1000)
  for i = 1, #due do
    local jk = JP .. due[i]
    local prio = redis.call('HGET', jk, 'prio')
    if prio then enqueue(due[i], jk, tonumber(prio)) end
  end
  if #due > 0 then redis.call('ZREM', DELAYED, unpack(due)) end
end
"""

# ARGV[6] id, [7] payload, [8] priority, [9] attempts, [10] backoff ms, [11] delay ms,
# [12] remove_on_complete, [13] remove_on_fail ('' = the queue's default).
# -> {created 0/1, state}
ADD = r"""
local created, state = add_job(ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11],
  ARGV[12], ARGV[13], now_ms())
return {created, state}
"""

# Apply the outcomes of finished jobs, then take up to ``want`` new jobs, highest band first.
# ARGV[6] consumer, [7] want, [8] limiter max, [9] limiter window ms, [10] outcomes as one
# msgpack array of [id, eid, band, kind, delay ms, category, code, message, then] (kind: c
# complete, f fail, r retry, d defer, h hand back; then, on a completion only: jobs to add
# with it, [id, n, priority] each, its payload ARGV[n], the queue's default options), or ''.
# -> {applied flags (1 applied, 2 applied by an earlier call, 0 not this delivery's job any
# more), jobs (8 fields each), paused, limiter wait ms, ms to next delayed or -1}
STEP = r"""
local consumer, want = ARGV[6], tonumber(ARGV[7])
local lmax, ldur = tonumber(ARGV[8]), tonumber(ARGV[9])
local now, now_s = now_ms()
local applied = {}
local SETTLED_AS = {c = 'completed', f = 'failed'}
local c, f, t = 0, 0, 0
if ARGV[10] ~= '' then
  local outcomes = cmsgpack.unpack(ARGV[10])
  local acks = {}
  local completed, roc = {}, nil
  for i = 1, #outcomes do
    local o = outcomes[i]
    local id, eid, band, kind = o[1], o[2], o[3], o[4]
    local a = acks[band]
    if not a then
      a = {}
      acks[band] = a
    end
    a[#a + 1] = eid
    local jk = JP .. id
    local cur = redis.call('HMGET', jk, 'state', 'eid', 'pt', 'roc', 'leid')
    if cur[1] ~= 'active' or cur[2] ~= eid then
      -- 2: this very outcome was stored already (the consumer lost the reply and sent it
      -- again) and the job still rests in it; 0: the job was taken back from this delivery.
      applied[i] = (cur[5] == eid and cur[1] == SETTLED_AS[kind]) and 2 or 0
    else
      applied[i] = 1
      -- leid rides along with each outcome's own HSET: every call inside a script costs
      -- about as much as the command itself.
      if kind == 'c' then
        c = c + 1
        t = t + now - tonumber(cur[3])
        redis.call('HSET', jk, 'state', 'completed', 'eid', '', 'ft', now_s, 'prog', '100',
          'leid', eid)
        completed[#completed + 1] = id
        roc = cur[4] or DEF_ROC
        local later = o[9]
        if later then
          for k = 1, #later do
            local a = later[k]
            add_job(a[1], ARGV[a[2]], a[3], '', '', 0, '', '', now)
          end
        end
      elseif kind == 'f' then
        f = f + 1
        t = t + now - tonumber(cur[3])
        redis.call('HSET', jk, 'leid', eid)
        dead_letter(id, jk, o[6], o[7], o[8], now)
      elseif kind == 'h' then
        redis.call('HSET', jk, 'leid', eid)
        redis.call('HINCRBY', jk, 'made', -1)
        enqueue(id, jk, band)
      else
        if kind == 'd' then
          redis.call('HINCRBY', jk, 'made', -1)
          redis.call('HINCRBY', jk, 'def', 1)
        end
        redis.call('HSET', jk, 'state', 'delayed', 'eid', '', 'cat', o[6], 'code', o[7],
          'err', o[8], 'leid', eid)
        redis.call('ZADD', DELAYED, now + o[5], id)
      end
    end
  end
  -- One XACK and one XDEL per band: XDEL of a stream's head rescans its tombstones, so
  -- deleting a batch at once is much cheaper than one by one.
  for band, eids in pairs(acks) do
    redis.call('XACK', KEYS[band], G, unpack(eids))
    redis.call('XDEL', KEYS[band], unpack(eids))
  end
  retain(COMPLETED, completed, roc or DEF_ROC, now, false, now_s)
  bump_stats(now, c, f, t)
end

local jobs = {}
local paused = redis.call('EXISTS', PAUSED)
local limited = 0
if want > 0 and paused == 0 then
  promote(now_s)
  if lmax > 0 then
    local used = tonumber(redis.call('GET', LIMITER) or '0')
    if used >= lmax then
      limited = redis.call('PTTL', LIMITER)
      if limited <= 0 then limited = 1 end
      want = 0
    elseif want > lmax - used then
      want = lmax - used
    end
  end
  local got = 0
  for p = 1, 10 do
    if got >= want then break end
    local s = KEYS[p]
    while got < want and redis.call('XLEN', s) > 0 do
      local r = redis.call('XREADGROUP', 'GROUP', G, consumer, 'COUNT', want - got,
        'STREAMS', s, '>')
      if not r then break end
      local entries = r[1][2]
      for j = 1, #entries do
        local e = entries[j]
        got = got + activate(p, e[1], e[2][2], now_s, jobs)
      end
    end
  end
  if lmax > 0 and got > 0 then
    if redis.call('INCRBY', LIMITER, got) == got then redis.call('PEXPIRE', LIMITER, ldur) end
  end
end
local next_due = -1
if #jobs == 0 then
  local nd = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if nd[2] then
    next_due = tonumber(nd[2]) - now
    if next_due < 0 then next_due = 0 end
  end
end
return {applied, jobs, paused, limited, next_due}
"""

# Activate entries a blocking XREADGROUP delivered; if the queue was paused meanwhile, put
# them back to waiting instead. ARGV[6] n, then band, eid, id each.
ACTIVATE = r"""
local _, now_s = now_ms()
local jobs = {}
local n = tonumber(ARGV[6])
local paused = redis.call('EXISTS', PAUSED) == 1
for i = 0, n - 1 do
  local b = 7 + i * 3
  local band, eid, id = tonumber(ARGV[b]), ARGV[b + 1], ARGV[b + 2]
  if paused then
    local jk = JP .. id
    local d = redis.call('HMGET', jk, 'state', 'eid')
    redis.call('XACK', KEYS[band], G, eid)
    redis.call('XDEL', KEYS[band], eid)
    if d[1] == 'waiting' and d[2] == eid then enqueue(id, jk, band) end
  else
    activate(band, eid, id, now_s, jobs)
  end
end
return jobs
"""

# Take over jobs whose holder stopped renewing its claim for ``min_idle`` ms: put them back
# to waiting, or dead-letter them after ``max_stalled`` stalls.
# ARGV[6] consumer, [7] min idle ms, [8] max stalled, [9] count, [10..19] band cursors,
# [20] prune idle ms: if > 0, also delete consumers idle that long with nothing pending
# (workers that were killed); atomic here, so no entry can reach them in between.
# -> {cursors, requeued, dead (id, band, data, made, att each)}
RECLAIM = r"""
local consumer, min_idle = ARGV[6], ARGV[7]
local max_stalled, count = tonumber(ARGV[8]), ARGV[9]
local now = now_ms()
local cursors, dead = {}, {}
local requeued, failed = 0, 0
for p = 1, 10 do
  local s = KEYS[p]
  local cur = ARGV[9 + p]
  if redis.call('EXISTS', s) == 1 then
    -- JUSTID, then each entry by id: Redis 6.2 returns an entry deleted from the stream
    -- (by anyone but the queue, which acknowledges first) as nil and keeps it pending,
    -- so without its id it could never be acknowledged away.
    local r = redis.call('XAUTOCLAIM', s, G, consumer, min_idle, cur, 'COUNT', count, 'JUSTID')
    cur = r[1]
    for j = 1, #r[2] do
      local eid = r[2][j]
      local entry = redis.call('XRANGE', s, eid, eid)[1]
      local fields = entry and entry[2]
      redis.call('XACK', s, G, eid)
      redis.call('XDEL', s, eid)
      if fields then
        local id = fields[2]
        local jk = JP .. id
        local d = redis.call('HMGET', jk, 'state', 'eid')
        if d[2] == eid and d[1] == 'active' then
          local stl = redis.call('HINCRBY', jk, 'stl', 1)
          if stl > max_stalled then
            local x = redis.call('HMGET', jk, 'data', 'made', 'att')
            dead_letter(id, jk, 'RESOURCE', 'stalled',
              'job stalled ' .. stl .. ' times (its worker died or hung)', now)
            failed = failed + 1
            local k = #dead
            dead[k + 1] = id
            dead[k + 2] = p
            dead[k + 3] = x[1]
            dead[k + 4] = x[2]
            dead[k + 5] = x[3]
          else
            redis.call('HINCRBY', jk, 'made', -1)
            enqueue(id, jk, p)
            requeued = requeued + 1
          end
        elseif d[2] == eid and d[1] == 'waiting' then
          -- delivered by a blocking read to a consumer that died before activating it
          enqueue(id, jk, p)
          requeued = requeued + 1
        end
      end
    end
  end
  cursors[p] = cur
end
local prune = tonumber(ARGV[20])
if prune > 0 then
  for p = 1, 10 do
    if redis.call('EXISTS', KEYS[p]) == 1 then
      local infos = redis.call('XINFO', 'CONSUMERS', KEYS[p], G)
      for j = 1, #infos do
        local info, f = infos[j], {}
        for k = 1, #info, 2 do f[info[k]] = info[k + 1] end
        if f['pending'] == 0 and f['idle'] > prune and f['name'] ~= consumer then
          redis.call('XGROUP', 'DELCONSUMER', KEYS[p], G, f['name'])
        end
      end
    end
  end
end
bump_stats(now, 0, failed, 0)
return {cursors, requeued, dead}
"""

# ARGV[6] id -> 1 if a waiting or delayed job was removed.
CANCEL = r"""
local id = ARGV[6]
local jk = JP .. id
local d = redis.call('HMGET', jk, 'state', 'eid', 'prio')
if d[1] == 'waiting' then
  local s = KEYS[tonumber(d[3])]
  redis.call('XACK', s, G, d[2])
  redis.call('XDEL', s, d[2])
  redis.call('DEL', jk)
  return 1
elseif d[1] == 'delayed' then
  redis.call('ZREM', DELAYED, id)
  redis.call('DEL', jk)
  return 1
end
return 0
"""

# ARGV[6] id -> 1 if a failed job went back to waiting with fresh attempts. Its last error
# stays, as after any later run: the admin's job history shows it on the run that failed.
RETRY_FAILED = r"""
local id = ARGV[6]
local jk = JP .. id
local d = redis.call('HMGET', jk, 'state', 'dlq', 'prio')
if d[1] ~= 'failed' then return 0 end
if d[2] and d[2] ~= '' then redis.call('XDEL', DLQ, d[2]) end
redis.call('ZREM', FAILED, id)
redis.call('HSET', jk, 'made', 0, 'stl', 0, 'def', 0, 'dlq', '', 'prog', 0)
redis.call('HDEL', jk, 'ft', 'pt')
enqueue(id, jk, tonumber(d[3]))
return 1
"""

# ARGV[6] id -> 1 if a failed job (and its dead-letter entry) was deleted.
REMOVE_FAILED = r"""
local id = ARGV[6]
if redis.call('HGET', JP .. id, 'state') ~= 'failed' then return 0 end
redis.call('ZREM', FAILED, id)
drop_job(id)
return 1
"""

# ARGV[6] id, [7] eid, [8] percent -> 1 if this delivery still owns the job.
PROGRESS = r"""
local jk = JP .. ARGV[6]
local d = redis.call('HMGET', jk, 'state', 'eid')
if d[1] ~= 'active' or d[2] ~= ARGV[7] then return 0 end
redis.call('HSET', jk, 'prog', ARGV[8])
return 1
"""

# -> {waiting, active, delayed, completed, failed, paused, waiting in bands 1..ARGV[6]}
COUNTS = r"""
-- ARGV[6] (optional): also count the waiting jobs of bands 1..ARGV[6], returned last.
local top = tonumber(ARGV[6]) or 10
local waiting, active, waiting_top = 0, 0, 0
for p = 1, 10 do
  local s = KEYS[p]
  if redis.call('EXISTS', s) == 1 then
    local pend = redis.call('XPENDING', s, G)[1]
    local w = redis.call('XLEN', s) - pend
    waiting = waiting + w
    if p <= top then waiting_top = waiting_top + w end
    active = active + pend
  end
end
return {waiting, active, redis.call('ZCARD', DELAYED), redis.call('ZCARD', COMPLETED),
  redis.call('ZCARD', FAILED), redis.call('EXISTS', PAUSED), waiting_top}
"""
