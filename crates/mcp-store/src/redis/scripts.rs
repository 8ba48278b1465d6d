//! Lua scripts that make each write atomic: the value, the index and the change event are
//! applied together or not at all.
//!
//! They are sent with `EVAL` every time (Redis caches the compiled script), so a restarted,
//! empty server needs no `SCRIPT LOAD`.

/// KEYS: definition, status, index. ARGV: definition JSON, name, channel, event.
/// Returns 1 when created, 0 when the name is taken. A status left over under the name is
/// cleared: a new definition starts without one.
pub(crate) const CREATE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('DEL', KEYS[2])
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
";

/// KEYS: definition, index. ARGV: expected current JSON, new JSON, name, channel, event.
/// Returns 1 when replaced, 0 when absent, -1 when the stored value is no longer the
/// expected one (changed concurrently: read again and retry).
pub(crate) const UPDATE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'XX')
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// KEYS: definition, status, index. ARGV: name, channel, event.
/// Returns 1 when deleted, 0 when absent (the index entry is removed either way).
pub(crate) const DELETE: &str = r"
local removed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
if removed == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return removed
";
