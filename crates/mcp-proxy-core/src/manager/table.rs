//! The manager's tables (of upstreams, and of groups), and the order in which changes
//! apply to them.
//!
//! Changes reach a replica by two paths that can interleave: its own writes, applied as
//! soon as the store has them, and the change feed (its own writes again, other replicas'
//! writes, resyncs). Every change carries the store's version (see
//! [`mcp_store::Store#versions`]), and the table applies a change only when it is newer
//! than the last one applied for that name — so an older definition never replaces a newer
//! one, and a deleted definition never comes back from a stale put. Deletions are
//! remembered as tombstones for that, at most [`MAX_TOMBSTONES`] of them (the oldest go
//! first; a put as old as those is long past any feed).
//!
//! A change without a version (written before versions existed) is applied as it comes.

use std::collections::HashMap;
use std::sync::Arc;

/// Deleted names whose deletion version is remembered.
pub(crate) const MAX_TOMBSTONES: usize = 4096;

/// What runs (upstreams, or groups), and the version of the newest change applied per
/// name.
#[derive(Debug)]
pub(crate) struct Table<T> {
    pub(crate) running: HashMap<String, Arc<T>>,
    /// For a running name, the version of its newest definition seen (it may be newer
    /// than the running one's when only timestamps changed); for a deleted name, the
    /// version of its deletion.
    applied: HashMap<String, u64>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
            applied: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// Whether a definition of `name` at `version` is newer than every change applied to
    /// `name` (always, without a version).
    pub(crate) fn admits_put(&self, name: &str, version: Option<u64>) -> bool {
        match (version, self.applied.get(name)) {
            (Some(v), Some(&seen)) => v > seen,
            _ => true,
        }
    }

    /// Whether a deletion of `name` at `version` is newer than the definition applied.
    pub(crate) fn admits_delete(&self, name: &str, version: Option<u64>) -> bool {
        match (version, self.applied.get(name)) {
            (Some(v), Some(&seen)) => v > seen,
            _ => true,
        }
    }

    /// Records a change applied to `name`.
    pub(crate) fn record(&mut self, name: &str, version: Option<u64>) {
        let Some(v) = version else {
            return;
        };
        let seen = self.applied.entry(name.to_owned()).or_default();
        *seen = (*seen).max(v);
        if !self.running.contains_key(name) {
            self.prune_tombstones();
        }
    }

    /// Forgets the oldest tombstones beyond [`MAX_TOMBSTONES`] (give or take the running
    /// entries without a version, which the cheap first check does not see).
    fn prune_tombstones(&mut self) {
        if self.applied.len() <= MAX_TOMBSTONES + self.running.len() {
            return;
        }
        let mut dead: Vec<(u64, String)> = self
            .applied
            .iter()
            .filter(|(name, _)| !self.running.contains_key(*name))
            .map(|(name, v)| (*v, name.clone()))
            .collect();
        if dead.len() <= MAX_TOMBSTONES {
            return;
        }
        dead.sort_unstable();
        let excess = dead.len() - MAX_TOMBSTONES;
        for (_, name) in dead.into_iter().take(excess) {
            self.applied.remove(&name);
        }
    }

    #[cfg(test)]
    fn tombstones(&self) -> usize {
        self.applied
            .keys()
            .filter(|n| !self.running.contains_key(*n))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_changes_are_admitted() {
        let mut t = Table::<()>::default();
        assert!(t.admits_put("a", Some(5)));
        t.record("a", Some(5));
        assert!(!t.admits_put("a", Some(5)), "the same version again");
        assert!(!t.admits_put("a", Some(4)), "an older definition");
        assert!(
            !t.admits_delete("a", Some(3)),
            "a deletion older than the definition"
        );
        assert!(t.admits_delete("a", Some(6)));
        t.record("a", Some(6));
        assert!(!t.admits_put("a", Some(5)), "a stale put after the delete");
        assert!(t.admits_put("a", Some(7)), "created again");
        assert!(
            t.admits_put("a", None) && t.admits_delete("a", None),
            "unversioned"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Writes to one name (puts and deletes, versions growing) delivered in any order,
        /// each possibly more than once: the table ends with what the newest write says.
        #[test]
        fn any_delivery_order_ends_with_the_newest_write(
            writes in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..8),
            order in proptest::collection::vec(0usize..16, 1..24),
        ) {
            // writes[i]: true = put, false = delete, at version i + 1.
            let mut t = Table::<()>::default();
            let mut running: Option<u64> = None;
            let mut delivered: Vec<usize> = order.iter().map(|i| i % writes.len()).collect();
            delivered.extend(0..writes.len()); // every write arrives at least once
            for i in delivered {
                let v = Some(i as u64 + 1);
                if writes[i] {
                    if t.admits_put("x", v) {
                        running = v;
                        t.record("x", v);
                    }
                } else if t.admits_delete("x", v) {
                    running = None;
                    t.record("x", v);
                }
            }
            let newest = writes.len() - 1;
            let expected = writes[newest].then_some(newest as u64 + 1);
            proptest::prop_assert_eq!(running, expected);
        }
    }

    #[test]
    fn tombstones_are_bounded_oldest_first() {
        let mut t = Table::<()>::default();
        for i in 0..(MAX_TOMBSTONES as u64 + 10) {
            t.record(&format!("n{i}"), Some(i + 1));
        }
        assert_eq!(t.tombstones(), MAX_TOMBSTONES);
        assert!(t.admits_put("n0", Some(1)), "the oldest was forgotten");
        assert!(!t.admits_put(&format!("n{}", MAX_TOMBSTONES + 9), Some(1)));
    }
}
