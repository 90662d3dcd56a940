/* Lua scripts of src/store/queue.c. Each runs atomically inside one queue's slot {q:<name>}, so
 * any number of engramd processes may run them concurrently (including the housekeeping ones)
 * without coordinating. Times come from Redis's clock (TIME), never from the callers', so hosts
 * with skewed clocks agree on when a delayed job is due. */
#ifndef ENGRAM_QUEUE_SCRIPTS_H
#define ENGRAM_QUEUE_SCRIPTS_H

#define EG_QUEUE_LUA_NOW                                                                           \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* push: KEYS stream, delayed, delayed_data, seen; ARGV job_id, payload, delay_ms, dedupe_ms.
 * Returns 1 when queued, 0 for a duplicate job id. */
static const char eg_queue_lua_push[] =
    "if tonumber(ARGV[4]) > 0 then\n"
    "  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[4]) then return 0 end\n"
    "end\n"
    "local delay = tonumber(ARGV[3])\n"
    "if delay > 0 then\n" EG_QUEUE_LUA_NOW "  redis.call('ZADD', KEYS[2], now + delay, ARGV[1])\n"
    "  redis.call('HSET', KEYS[3], ARGV[1], '0:' .. ARGV[2])\n"
    "else\n"
    "  redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'n', '0', 'p', ARGV[2])\n"
    "end\n"
    "return 1\n";

/* promote: KEYS stream, delayed, delayed_data; ARGV limit. Moves due jobs into the stream.
 * Returns {moved, ms until the next due job or -1}. */
static const char eg_queue_lua_promote[] = EG_QUEUE_LUA_NOW
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = redis.call('HGET', KEYS[3], id)\n"
    "  if v then\n"
    "    local c = string.find(v, ':', 1, true)\n"
    "    redis.call('XADD', KEYS[1], '*', 'id', id, 'n', string.sub(v, 1, c - 1),\n"
    "               'p', string.sub(v, c + 1))\n"
    "    redis.call('HDEL', KEYS[3], id)\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[2], id)\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "local wait = -1\n"
    "if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end\n"
    "return {#ids, wait}\n";

/* finish: KEYS stream, delayed, delayed_data, dead; ARGV entry_id, mode (ack|retry|dead), job_id,
 * payload, attempts made, delay_ms, error, dead_maxlen. The XACK decides: 0 means the entry was
 * no longer pending (another consumer took it over and finished it), and then nothing else is
 * done, so a job is never rescheduled or dead-lettered twice. Returns the XACK count. */
static const char eg_queue_lua_finish[] =
    "local acked = redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "if acked == 0 then return 0 end\n" EG_QUEUE_LUA_NOW "if ARGV[2] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[3])\n"
    "  redis.call('HSET', KEYS[3], ARGV[3], ARGV[5] .. ':' .. ARGV[4])\n"
    "elseif ARGV[2] == 'dead' then\n"
    "  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'id', ARGV[3], 'n', ARGV[5],\n"
    "             'p', ARGV[4], 'err', ARGV[7], 'at', now)\n"
    "end\n"
    "return acked\n";

/* claim: KEYS stream, dead; ARGV consumer, min_idle_ms, cursor, count, max_deliveries,
 * dead_maxlen. XAUTOCLAIM, except that an entry delivered more than max_deliveries times (its
 * consumers keep dying on it: a poison job) is dead-lettered instead of handed out again.
 * Consumers with nothing pending and idle for an hour (processes that went away) are dropped
 * from the group. Returns {next_cursor, entries}. */
static const char eg_queue_lua_claim[] = EG_QUEUE_LUA_NOW
    "local r = redis.call('XAUTOCLAIM', KEYS[1], 'workers', ARGV[1], ARGV[2], ARGV[3],\n"
    "                     'COUNT', ARGV[4])\n"
    "local out = {}\n"
    "for _, e in ipairs(r[2]) do\n"
    "  local p = redis.call('XPENDING', KEYS[1], 'workers', e[1], e[1], 1)\n"
    "  local n = (p[1] and p[1][4]) or 0\n"
    "  if n > tonumber(ARGV[5]) then\n"
    "    local f = {}\n"
    "    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end\n"
    "    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'id', f['id'] or '',\n"
    "               'n', f['n'] or '0', 'p', f['p'] or '',\n"
    "               'err', 'abandoned: delivered ' .. n .. ' times to consumers that died',\n"
    "               'at', now)\n"
    "    redis.call('XACK', KEYS[1], 'workers', e[1])\n"
    "    redis.call('XDEL', KEYS[1], e[1])\n"
    "  else\n"
    "    out[#out + 1] = e\n"
    "  end\n"
    "end\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], 'workers')) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  if f['name'] ~= ARGV[1] and f['pending'] == 0 and f['idle'] > 3600000 then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', f['name'])\n"
    "  end\n"
    "end\n"
    "return {r[1], out}\n";

/* stats: KEYS stream, delayed, dead. Returns {xlen, pending, delayed, dead}. */
static const char eg_queue_lua_stats[] =
    "local len = redis.call('XLEN', KEYS[1])\n"
    "local pending = 0\n"
    "local p = redis.pcall('XPENDING', KEYS[1], 'workers')\n"
    "if type(p) == 'table' and p['err'] == nil then pending = p[1] end\n"
    "return {len, pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3])}\n";

#endif
