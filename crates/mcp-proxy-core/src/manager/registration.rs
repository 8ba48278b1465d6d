//! Registration: the rules every new or changed definition passes, whoever brings it (the
//! Admin API, an import, `proxyd`'s declared servers, or a program that embeds the core).
//!
//! [`Manager::register`], [`Manager::update`] and [`Manager::remove`] validate, enforce
//! `max_connections` and `stdio_allowed_commands`, write the store and apply the result,
//! so the running upstreams match the answer at once (the change feed brings the same
//! event later; applying it twice changes nothing).
//!
//! `max_connections` counts the store's definitions. On one replica, registrations are
//! serialised, so concurrent creates never pass the limit. Across replicas sharing a
//! store the count and the create are two steps: two replicas registering at the same
//! moment may each see room for one more, and the store may hold a definition or two
//! beyond the limit; each replica still runs at most `max_connections` upstreams (the
//! surplus is logged and not started).

use mcp_types::{
    CommandSpec, DefinitionSource, FieldError, McpDefinition, TransportKind, ValidationErrors,
};
use tracing::info;

use super::Manager;
use crate::error::Error;

impl Manager {
    /// The checks beyond [`McpDefinition::validate`] that this manager's configuration
    /// adds (`stdio_allowed_commands`, a `command` string that is really a command line),
    /// for callers that collect every problem of an input at once.
    pub fn extra_checks(&self, def: &McpDefinition) -> Vec<FieldError> {
        extra_checks(def, &self.inner.config.stdio_allowed_commands)
    }

    /// Every check a definition must pass before it is stored: [`McpDefinition::validate`]
    /// and [`Manager::extra_checks`].
    pub fn validate(&self, def: &McpDefinition) -> Result<(), ValidationErrors> {
        validate_definition(def, &self.inner.config.stdio_allowed_commands)
    }

    /// Registers a new definition: validates it, refuses it when the store holds
    /// `max_connections` definitions already, creates it in the store and starts it.
    /// Returns the definition as stored (version, timestamps).
    ///
    /// Registrations through one manager are serialised, so concurrent ones never pass
    /// the limit. Replicas sharing a store count and create in two steps: two of them
    /// registering at the same moment may leave the store a definition or two beyond
    /// the limit; each replica still runs at most `max_connections` upstreams.
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::TooManyUpstreams`], [`Error::Store`] (a name taken by
    /// a definition or a group, a store that cannot be reached), [`Error::ShuttingDown`].
    pub async fn register(&self, def: McpDefinition) -> Result<McpDefinition, Error> {
        self.validate(&def).map_err(Error::Invalid)?;
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let _one_at_a_time = self.inner.registering.lock().await;
        self.check_room().await?;
        let stored = self.inner.store.create(def).await?;
        info!(mcp = %stored.name, transport = stored.transport.as_str(), "mcp registered");
        self.apply_put(stored.clone());
        Ok(stored)
    }

    /// Whether one more definition fits under `max_connections`, counting the store's.
    ///
    /// # Errors
    /// [`Error::TooManyUpstreams`], or [`Error::Store`] when the store cannot be listed.
    pub async fn check_room(&self) -> Result<(), Error> {
        let max = self.inner.config.max_connections;
        if self.inner.store.list().await?.len() >= max {
            return Err(Error::TooManyUpstreams(max));
        }
        Ok(())
    }

    /// The stored definition of that name, if its registrant may change it: a definition
    /// declared in the configuration (`source: config`) is changed only by redeclaring it.
    ///
    /// # Errors
    /// [`Error::UnknownMcp`], [`Error::Declared`], [`Error::Store`].
    pub async fn registered(&self, name: &str) -> Result<McpDefinition, Error> {
        let existing = self
            .inner
            .store
            .get(name)
            .await?
            .ok_or_else(|| Error::UnknownMcp(name.to_owned()))?;
        if existing.source == DefinitionSource::Config {
            return Err(Error::Declared(name.to_owned()));
        }
        Ok(existing)
    }

    /// Replaces a registered definition (hot reload): validates it, writes it when the
    /// stored version is `expected` (any version when `None`) and applies it.
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::UnknownMcp`], [`Error::Declared`] (a definition
    /// declared in the configuration), [`Error::Store`] (`VersionMismatch` when
    /// `expected` is not the stored version), [`Error::ShuttingDown`].
    pub async fn update(
        &self,
        def: McpDefinition,
        expected: Option<u64>,
    ) -> Result<McpDefinition, Error> {
        self.validate(&def).map_err(Error::Invalid)?;
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        self.registered(&def.name).await?;
        let stored = self.inner.store.update_if(def, expected).await?;
        info!(mcp = %stored.name, "mcp updated");
        self.apply_put(stored.clone());
        Ok(stored)
    }

    /// Deletes a registered definition when the stored version is `expected` (any
    /// version when `None`) and stops its upstream. Returns the store's version of the
    /// deletion.
    ///
    /// # Errors
    /// [`Error::UnknownMcp`], [`Error::Declared`], [`Error::Store`] (`VersionMismatch`).
    pub async fn remove(&self, name: &str, expected: Option<u64>) -> Result<u64, Error> {
        self.registered(name).await?;
        let version = self
            .inner
            .store
            .delete_if(name, expected)
            .await
            .map_err(|e| match e {
                mcp_store::Error::NotFound(n) => Error::UnknownMcp(n),
                e => Error::Store(e),
            })?;
        info!(mcp = %name, "mcp deleted");
        self.apply_delete(name, Some(version));
        Ok(version)
    }
}

/// Every check a definition must pass before it is stored, given the
/// `stdio_allowed_commands` list: [`McpDefinition::validate`], the list, and a `command`
/// string that is really a command line. [`Manager::validate`] with the manager's list.
pub fn validate_definition(
    def: &McpDefinition,
    stdio_allowed_commands: &[String],
) -> Result<(), ValidationErrors> {
    let mut errors = match def.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    errors.extend(extra_checks(def, stdio_allowed_commands));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

fn extra_checks(def: &McpDefinition, stdio_allowed_commands: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if def.transport == TransportKind::Stdio
        && let Some(CommandSpec::Program(line)) = &def.command
        && let Some(hint) = command_line_hint(line, &def.args)
    {
        errors.push(FieldError {
            field: "command".into(),
            message: hint,
        });
    }
    errors.extend(mcp_types::validate::check_stdio_allowed(
        def,
        stdio_allowed_commands,
    ));
    errors
}

/// A `command` string is one program and is never split; `"npx -y pkg"` names a program
/// that cannot exist, so it is refused with the array form to write instead. A path with
/// spaces (`/opt/My Tools/server`, `./my server`) is a program and passes.
fn command_line_hint(line: &str, args: &[String]) -> Option<String> {
    let trimmed = line.trim();
    let is_path = ["/", "./", "../", "~/"]
        .iter()
        .any(|p| trimmed.starts_with(p));
    if !trimmed.contains(char::is_whitespace) || is_path {
        return None;
    }
    let words: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
    let mut argv = words.clone();
    argv.extend(args.iter().cloned());
    let array = serde_json::to_string(&argv).unwrap_or_default();
    let tail = serde_json::to_string(&argv[1..]).unwrap_or_default();
    Some(format!(
        "{line:?} is one program name (a command string is not split on spaces): write \
         the array form \"command\": {array}, or \"command\": {:?} with \"args\": {tail}",
        words[0]
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcp_store::{MemoryStore, Store};
    use mcp_test_support::definitions::unreachable as def;

    use super::*;
    use crate::{ManagerConfig, TransportConnector};

    #[test]
    fn a_command_line_in_the_string_form_gets_the_array_form_as_a_hint() {
        let def = McpDefinition::stdio("e", "npx -y @scope/pkg", &["stdio"]);
        let err = validate_definition(&def, &[]).unwrap_err();
        let msg = &err.0[0].message;
        assert!(
            msg.contains(r#""command": ["npx","-y","@scope/pkg","stdio"]"#),
            "{msg}"
        );
        assert!(msg.contains(r#""command": "npx" with "args": ["-y","@scope/pkg","stdio"]"#));
        for fine in ["npx", "/opt/My Tools/server", "./bin/my server"] {
            let def = McpDefinition::stdio("e", fine, &[]);
            validate_definition(&def, &[]).unwrap();
        }
    }

    #[tokio::test]
    async fn concurrent_registrations_never_pass_max_connections() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let manager = Manager::new(
            store.clone(),
            Arc::new(TransportConnector::default()),
            ManagerConfig {
                max_connections: 3,
                ..ManagerConfig::default()
            },
        );
        let tries: Vec<_> = (0..12)
            .map(|i| {
                let m = manager.clone();
                tokio::spawn(async move { m.register(def(&format!("u{i}"))).await })
            })
            .collect();
        let mut refused = 0;
        for t in tries {
            match t.await.unwrap() {
                Ok(_) => {}
                Err(Error::TooManyUpstreams(3)) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(refused, 9);
        assert_eq!(store.list().await.unwrap().len(), 3);
        assert_eq!(manager.upstreams().len(), 3);
        manager.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
