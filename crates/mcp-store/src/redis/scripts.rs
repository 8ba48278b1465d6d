//! Lua scripts that make each write atomic: the value, the index, the version counter and
//! the change event are applied together or not at all. Definitions and groups use the
//! same scripts with their own keys.
//!
//! They are sent with `EVAL` every time (Redis caches the compiled script), so a restarted,
//! empty server needs no `SCRIPT LOAD`.
//!
//! Every script that writes takes the next version from `{prefix}version` (see
//! [`Store`](crate::Store#versions)): the server's clock in microseconds (`TIME`), or one
//! more than the last version when that is greater. Lua numbers are doubles, exact up to
//! 2^53, far beyond microseconds since 1970. The JSON is sent without a `version` member;
//! the script puts the version in front of the other members.

/// Shared by the scripts that write: the next version, stored, as a decimal string.
macro_rules! next_version {
    ($key:literal) => {
        concat!(
            // Before Redis 5, a script that calls TIME may write only after this.
            "if redis.replicate_commands then redis.replicate_commands() end\n",
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n",
            "local last = tonumber(redis.call('GET', ",
            $key,
            ") or '0') or 0\n",
            "local version = now\n",
            "if last >= version then version = last + 1 end\n",
            "local v = string.format('%.0f', version)\n",
            "redis.call('SET', ",
            $key,
            ", v)\n",
        )
    };
}

/// KEYS: the value's key, its index, version, the other kind's key of the name, and (for
/// a definition) its status. ARGV: JSON, name, channel, event. Returns the version when
/// created, 0 when the name is taken by one of the same kind, -2 when the other kind holds
/// it (groups and definitions share one namespace). A status left over under the name is
/// cleared: a new definition starts without one.
pub(crate) const CREATE: &str = concat!(
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n  return 0\nend\n",
    "if redis.call('EXISTS', KEYS[4]) == 1 then\n  return -2\nend\n",
    next_version!("KEYS[3]"),
    r#"
redis.call('SET', KEYS[1], '{"version":' .. v .. ',' .. string.sub(ARGV[1], 2))
if KEYS[5] then redis.call('DEL', KEYS[5]) end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return version
"#
);

/// KEYS: the value's key, its index, version. ARGV: expected current JSON, new JSON,
/// name, channel, event. Returns the version when replaced, 0 when absent, -1 when the
/// stored value is no longer the expected one (changed concurrently: read again and
/// retry).
pub(crate) const UPDATE: &str = concat!(
    r"
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
",
    next_version!("KEYS[3]"),
    r#"
redis.call('SET', KEYS[1], '{"version":' .. v .. ',' .. string.sub(ARGV[2], 2), 'XX')
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return version
"#
);

/// KEYS: the value's key, its index, version, and (for a definition) its status. ARGV:
/// name, channel, event, expected current JSON (empty: delete whatever is stored).
/// Returns the version of the deletion, 0 when absent (the index entry is removed either
/// way), -1 when the stored value is no longer the expected one. The event gets the
/// version appended.
pub(crate) const DELETE: &str = concat!(
    r"
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[4] ~= '' and current ~= ARGV[4] then
  return -1
end
",
    next_version!("KEYS[3]"),
    r#"
redis.call('DEL', KEYS[1])
if KEYS[4] then redis.call('DEL', KEYS[4]) end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], string.sub(ARGV[3], 1, -2) .. ',"version":' .. v .. '}')
return version
"#
);
