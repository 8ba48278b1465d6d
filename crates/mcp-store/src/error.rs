//! The error of every store operation.

use std::fmt;

/// What a store holds under a name: an upstream definition or a group. The two share one
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An upstream definition.
    Definition,
    /// A group.
    Group,
}

impl Kind {
    /// `"definition"` or `"group"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Definition => "definition",
            Self::Group => "group",
        }
    }
}

impl Kind {
    /// The other kind (the one sharing the namespace).
    pub(crate) fn other(self) -> Self {
        match self {
            Self::Definition => Self::Group,
            Self::Group => Self::Definition,
        }
    }

    /// Nothing of this kind is stored under `name`.
    pub(crate) fn not_found(self, name: impl Into<String>) -> Error {
        match self {
            Self::Definition => Error::NotFound(name.into()),
            Self::Group => Error::GroupNotFound(name.into()),
        }
    }

    /// Something of this kind is stored under `name` already.
    pub(crate) fn already_exists(self, name: impl Into<String>) -> Error {
        match self {
            Self::Definition => Error::AlreadyExists(name.into()),
            Self::Group => Error::GroupAlreadyExists(name.into()),
        }
    }

    /// Something of the other kind holds `name`.
    pub(crate) fn name_taken(self, name: impl Into<String>) -> Error {
        Error::NameTaken {
            name: name.into(),
            wanted: self,
            taken: self.other(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No definition of this name is stored.
    #[error("definition {0:?} not found")]
    NotFound(String),

    /// A definition of this name is already stored.
    #[error("definition {0:?} already exists")]
    AlreadyExists(String),

    /// No group of this name is stored.
    #[error("group {0:?} not found")]
    GroupNotFound(String),

    /// A group of this name is already stored.
    #[error("group {0:?} already exists")]
    GroupAlreadyExists(String),

    /// A create found the name taken by the other kind: groups and upstream definitions
    /// share one namespace.
    #[error(
        "{wanted} {name:?} cannot be created: the name is taken by a {taken} (groups and definitions share one namespace)"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// What was to be created.
        wanted: Kind,
        /// What holds the name.
        taken: Kind,
    },

    /// A conditional write found another version stored than the one it was made for.
    #[error("{kind} {name:?} is at version {}, not {expected}", current.map_or_else(|| "none".to_owned(), |v| v.to_string()))]
    VersionMismatch {
        /// A definition or a group.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version the write was made for.
        expected: u64,
        /// The version stored (`None`: written before versions existed).
        current: Option<u64>,
    },

    /// The back-end cannot be reached or did not answer in time; the operation may or may
    /// not have been applied. Retrying later is allowed.
    #[error("{backend} unavailable: {message}")]
    Unavailable {
        /// `"redis"`, …
        backend: &'static str,
        /// What failed.
        message: String,
    },

    /// A stored value could not be decoded. `name` is the storage key (for Redis the full
    /// key, such as `mcp_proxy:mcps:fs`).
    #[error("stored value {name:?} is corrupt: {message}")]
    Corrupt {
        /// The key holding the bad value.
        name: String,
        /// Why it could not be decoded.
        message: String,
    },

    /// The back-end answered with an error that a retry will not fix (a bug, or a key of the
    /// wrong type written by someone else).
    #[error("{backend} error: {message}")]
    Backend {
        /// `"redis"`, …
        backend: &'static str,
        /// The back-end's answer.
        message: String,
    },

    /// The store configuration is invalid (such as a malformed Redis URL).
    #[error("invalid store config: {0}")]
    Config(String),
}

impl Error {
    /// Whether a retry may succeed (the back-end was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Whether the definition (or group) was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_) | Self::GroupNotFound(_))
    }

    /// Whether the name is taken: by a definition or group of the same kind, or (see
    /// [`Error::NameTaken`]) of the other.
    pub fn is_already_exists(&self) -> bool {
        matches!(
            self,
            Self::AlreadyExists(_) | Self::GroupAlreadyExists(_) | Self::NameTaken { .. }
        )
    }

    /// Whether a conditional write found another version.
    pub fn is_version_mismatch(&self) -> bool {
        matches!(self, Self::VersionMismatch { .. })
    }

    /// Whether a stored value could not be decoded.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_with_context_first() {
        assert_eq!(
            Error::AlreadyExists("fs".into()).to_string(),
            r#"definition "fs" already exists"#
        );
        assert_eq!(
            Error::NotFound("fs".into()).to_string(),
            r#"definition "fs" not found"#
        );
        let err = Error::Unavailable {
            backend: "redis",
            message: "command timed out after 2s".into(),
        };
        assert_eq!(
            err.to_string(),
            "redis unavailable: command timed out after 2s"
        );
        assert!(err.is_retryable() && !err.is_not_found());
        assert!(Error::NotFound("x".into()).is_not_found());
        assert!(!Error::NotFound("x".into()).is_retryable());
        let taken = Error::NameTaken {
            name: "fs".into(),
            wanted: Kind::Group,
            taken: Kind::Definition,
        };
        assert_eq!(
            taken.to_string(),
            r#"group "fs" cannot be created: the name is taken by a definition (groups and definitions share one namespace)"#
        );
        assert!(taken.is_already_exists());
        assert!(Error::GroupNotFound("g".into()).is_not_found());
    }
}
