/**
 * Lua scripts of the Redis broker. Each runs atomically, so a message is never both in a list and in
 * `unacked`, nor in neither (kombu uses MULTI/WATCH for the same bookkeeping; the keys and values are
 * the same, so Python workers can restore what a dead Node worker left, and the other way round).
 */

/**
 * Pop up to ARGV[2] messages from KEYS[1..n-2] in order and register each in `unacked` (KEYS[n-1]) and
 * `unacked_index` (KEYS[n]) with score ARGV[1]. Returns a flat list: list name, envelope, …
 */
export const POP_BATCH = `
local n = tonumber(ARGV[2])
local nlists = #KEYS - 2
local unacked = KEYS[nlists + 1]
local index = KEYS[nlists + 2]
local out = {}
local got = 0
for i = 1, nlists do
  while got < n do
    local m = redis.call('RPOP', KEYS[i])
    if not m then break end
    local ok, env = pcall(cjson.decode, m)
    if ok and type(env) == 'table' and type(env.properties) == 'table' and type(env.properties.delivery_tag) == 'string' then
      local ex, rk = '', ''
      local di = env.properties.delivery_info
      if type(di) == 'table' then
        if type(di.exchange) == 'string' then ex = di.exchange end
        if type(di.routing_key) == 'string' then rk = di.routing_key end
      end
      redis.call('ZADD', index, ARGV[1], env.properties.delivery_tag)
      redis.call('HSET', unacked, env.properties.delivery_tag, '[' .. m .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
    end
    out[#out + 1] = KEYS[i]
    out[#out + 1] = m
    got = got + 1
  end
  if got >= n then break end
end
return out
`;

/** Register one message popped by BRPOP: ZADD index ARGV[1] tag; HSET unacked tag payload. */
export const REGISTER = `
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
`;

/** Ack: forget the messages. KEYS: unacked, unacked_index; ARGV: tags (at most a few thousand). */
export const ACK = `
redis.call('ZREM', KEYS[2], unpack(ARGV))
return redis.call('HDEL', KEYS[1], unpack(ARGV))
`;

/**
 * Put a message back on a list, only if it is still ours (still in `unacked`, unchanged since read when
 * ARGV[4] is given), and forget it. KEYS: unacked, unacked_index, list; ARGV: tag, envelope,
 * "left"|"right", expected unacked payload (optional). Returns 1 if restored.
 */
export const RESTORE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if ARGV[4] and ARGV[4] ~= '' and cur ~= ARGV[4] then return 0 end
if ARGV[3] == 'left' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
else
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

/** Release the restore mutex only if it still holds our token. KEYS: mutex; ARGV: token. */
export const RELEASE_MUTEX = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
