//! A real `redis-server` on a free loopback port (filled in by the store work).
