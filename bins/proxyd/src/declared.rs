//! Declared servers: `[[servers]]` in `proxyd.toml` and the definition files of
//! `servers_dir`, applied like Admin-API registrations at start and again, as a diff, on
//! SIGHUP or when a file changes.
//!
//! - [`load()`]: reads the declarations, expands `${VAR}` from the environment, validates
//!   every definition; all problems at once, or nothing.
//! - [`reconcile()`]: makes the store's `source: config` definitions match the declarations,
//!   never touching a definition registered through the Admin API.
//! - [`watch`](mod@watch): the reload loop (SIGHUP, a polling watcher over the files, debounced).

mod expand;
pub(crate) mod load;
pub(crate) mod reconcile;
pub(crate) mod watch;

pub(crate) use load::{DeclaredSet, load};
pub(crate) use reconcile::reconcile;
