//! The error of every store operation.

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

    /// A conditional write found another version stored than the one it was made for.
    #[error("definition {name:?} is at version {}, not {expected}", current.map_or_else(|| "none".to_owned(), |v| v.to_string()))]
    VersionMismatch {
        /// The definition's name.
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

    /// Whether the definition was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// Whether the definition already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists(_))
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
    }
}
