//! A slot for what a layer above derives from a definition once (parsed allow-lists,
//! token digests), kept as long as the definition runs and dropped with it.

use std::any::Any;
use std::sync::{Arc, OnceLock};

/// Holds one derived value, built on first use.
#[derive(Debug, Default)]
pub(crate) struct Derived(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Derived {
    /// The value, built by `build` the first time. One type per slot: asking for
    /// another type builds it afresh each time.
    pub(crate) fn get<T: Send + Sync + 'static>(&self, build: impl FnOnce() -> T) -> Arc<T> {
        let mut build = Some(build);
        let slot = self.0.get_or_init(|| {
            let build = build.take().expect("taken only here");
            Arc::new(build())
        });
        if let Ok(value) = slot.clone().downcast::<T>() {
            return value;
        }
        // The slot holds another type, so `build` was not used: build this one afresh.
        let build = build.expect("unused when the slot holds another type");
        Arc::new(build())
    }
}
