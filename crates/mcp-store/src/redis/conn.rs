//! The command side of the Redis back-end: every read and write, each bounded by the
//! command timeout and failing fast while the connection is down.

use std::future::Future;
use std::time::Duration;

use fred::prelude::{Client, ClientLike, ErrorKind, KeysInterface, Options, SetsInterface};
use fred::types::CustomCommand;
use mcp_types::{McpStatus, Timestamp};
use serde::de::DeserializeOwned;

use super::keys::{Event, Keys};
use super::record::Record;
use super::scripts;
use crate::store::now;
use crate::{Error, Kind, Result};

const BACKEND: &str = "redis";

/// Attempts of an update whose compare-and-set keeps losing to concurrent writers.
const UPDATE_ATTEMPTS: usize = 5;

/// A connected command client plus the key layout.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    client: Client,
    keys: Keys,
    timeout: Duration,
    options: Options,
}

impl Conn {
    pub(crate) fn new(client: Client, keys: Keys, timeout: Duration) -> Self {
        let options = Options {
            // Fail at once while disconnected instead of queueing until the server is back:
            // a queued write could otherwise land after its caller was told it failed.
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(timeout),
            ..Options::default()
        };
        Self {
            client,
            keys,
            timeout,
            options,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The client with this connection's options (fail fast, one attempt, the timeout).
    pub(super) fn with(&self) -> fred::clients::WithOptions<Client> {
        self.client.with_options(&self.options)
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one command with the timeout, mapping every failure onto the store's error.
    pub(super) async fn call<T>(
        &self,
        what: impl FnOnce() -> String,
        fut: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(map_error(&what(), &err)),
            Err(_) => Err(Error::Unavailable {
                backend: BACKEND,
                message: format!("{}: timed out after {:?}", what(), self.timeout),
            }),
        }
    }

    /// `EVAL script keys args` with this client's options; returns the script's integer.
    pub(super) async fn eval(
        &self,
        what: &str,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<i64> {
        let mut argv = Vec::with_capacity(2 + keys.len() + args.len());
        argv.push(script.to_owned());
        argv.push(keys.len().to_string());
        argv.extend(keys.iter().cloned());
        argv.extend(args.iter().cloned());
        let cmd = CustomCommand::new_static("EVAL", None::<u16>, false);
        let with = self.client.with_options(&self.options);
        self.call(|| what.to_owned(), with.custom::<i64, String>(cmd, argv))
            .await
    }

    /// `DEL key`; `what` names it in errors.
    pub(super) async fn del(&self, key: &str, what: impl FnOnce() -> String) -> Result<()> {
        let with = self.with();
        self.call(what, with.del::<i64, _>(key)).await.map(drop)
    }

    async fn get_raw(&self, key: &str) -> Result<Option<String>> {
        let with = self.client.with_options(&self.options);
        self.call(
            || format!("get {key:?}"),
            with.get::<Option<String>, _>(key),
        )
        .await
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        let with = self.client.with_options(&self.options);
        self.call(|| "ping".to_owned(), with.ping::<String>(None))
            .await
            .map(drop)
    }

    /// The definition or group of `name`.
    pub(crate) async fn get<T: Record>(&self, name: &str) -> Result<Option<T>> {
        let key = self.keys.record(T::KIND, name);
        self.get_raw(&key)
            .await?
            .map(|text| decode_record::<T>(&key, name, &text))
            .transpose()
    }

    /// Every decodable definition (or group), sorted by name. A corrupt entry is skipped
    /// with a warning so that one bad value cannot hide all the others (`get` reports it
    /// as [`Error::Corrupt`]); an index entry whose key is gone is skipped silently.
    pub(crate) async fn list<T: Record>(&self) -> Result<Vec<T>> {
        let with = self.client.with_options(&self.options);
        let index = self.keys.index_of(T::KIND);
        let mut names: Vec<String> = self
            .call(|| format!("smembers {index:?}"), with.smembers(&index))
            .await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        names.sort();
        let keys: Vec<String> = names.iter().map(|n| self.keys.record(T::KIND, n)).collect();
        let values: Vec<Option<String>> = self
            .call(
                || format!("mget {} {}s", keys.len(), T::KIND),
                with.mget(keys.clone()),
            )
            .await?;
        let mut out = Vec::with_capacity(values.len());
        for ((name, key), value) in names.iter().zip(&keys).zip(values) {
            let Some(text) = value else {
                tracing::debug!(key = %key, "index names a missing {}, skipping", T::KIND);
                continue;
            };
            match decode_record::<T>(key, name, &text) {
                Ok(value) => out.push(value),
                Err(err) => {
                    tracing::warn!(key = %key, error = %err, "skipping corrupt {}", T::KIND)
                }
            }
        }
        Ok(out)
    }

    /// Creates a definition or group; the name must be free of both kinds.
    pub(crate) async fn create<T: Record>(&self, mut value: T) -> Result<T> {
        let t = now();
        value.set_server_fields(Some(t), Some(t), None);
        let json = encode(&value)?;
        let kind = T::KIND;
        let name = value.name().to_owned();
        let mut keys = vec![
            self.keys.record(kind, &name),
            self.keys.index_of(kind),
            self.keys.version(),
            self.keys.record(kind.other(), &name),
        ];
        if kind == Kind::Definition {
            keys.push(self.keys.status(&name));
        }
        let created = self
            .eval(
                &format!("create {kind} {name:?}"),
                scripts::CREATE,
                &keys,
                &[
                    json,
                    name.clone(),
                    self.keys.channel(),
                    Event::put(kind, &name).encode(),
                ],
            )
            .await?;
        match created {
            -2 => Err(kind.name_taken(name)),
            v if v > 0 => {
                value.set_server_fields(Some(t), Some(t), u64::try_from(v).ok());
                Ok(value)
            }
            _ => Err(kind.already_exists(name)),
        }
    }

    /// Reads the stored JSON of `name` for a compare-and-set, checking its version against
    /// `expected` first.
    async fn current(
        &self,
        kind: Kind,
        key: &str,
        name: &str,
        expected: Option<u64>,
    ) -> Result<String> {
        let Some(current) = self.get_raw(key).await? else {
            return Err(kind.not_found(name));
        };
        if let Some(expected) = expected {
            let stored = version_of(&current);
            if stored != Some(expected) {
                return Err(Error::VersionMismatch {
                    kind,
                    name: name.to_owned(),
                    expected,
                    current: stored,
                });
            }
        }
        Ok(current)
    }

    pub(crate) async fn update<T: Record>(&self, mut value: T, expected: Option<u64>) -> Result<T> {
        let kind = T::KIND;
        let name = value.name().to_owned();
        let key = self.keys.record(kind, &name);
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.current(kind, &key, &name, expected).await?;
            let t = now();
            let created_at = Some(created_at_of(&key, &current).unwrap_or(t));
            value.set_server_fields(created_at, Some(t), None);
            let json = encode(&value)?;
            let outcome = self
                .eval(
                    &format!("update {kind} {name:?}"),
                    scripts::UPDATE,
                    &[key.clone(), self.keys.index_of(kind), self.keys.version()],
                    &[
                        current,
                        json,
                        name.clone(),
                        self.keys.channel(),
                        Event::put(kind, &name).encode(),
                    ],
                )
                .await?;
            match outcome {
                0 => return Err(kind.not_found(name)),
                v if v > 0 => {
                    value.set_server_fields(created_at, Some(t), u64::try_from(v).ok());
                    return Ok(value);
                }
                _ => tracing::debug!(key = %key, "{kind} changed during update, retrying"),
            }
        }
        Err(Error::Unavailable {
            backend: BACKEND,
            message: format!(
                "update {kind} {name:?}: changed concurrently {UPDATE_ATTEMPTS} times in a row"
            ),
        })
    }

    pub(crate) async fn delete(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<u64>,
    ) -> Result<u64> {
        let key = self.keys.record(kind, name);
        let mut keys = vec![key.clone(), self.keys.index_of(kind), self.keys.version()];
        if kind == Kind::Definition {
            keys.push(self.keys.status(name));
        }
        for _ in 0..UPDATE_ATTEMPTS {
            // Unconditional: delete whatever is stored. Conditional: only the value read.
            let current = match expected {
                Some(_) => self.current(kind, &key, name, expected).await?,
                None => String::new(),
            };
            let removed = self
                .eval(
                    &format!("delete {kind} {name:?}"),
                    scripts::DELETE,
                    &keys,
                    &[
                        name.to_owned(),
                        self.keys.channel(),
                        Event::deleted(kind, name).encode(),
                        current,
                    ],
                )
                .await?;
            match removed {
                0 => return Err(kind.not_found(name)),
                v if v > 0 => return Ok(u64::try_from(v).unwrap_or_default()),
                _ => tracing::debug!(key = %key, "{kind} changed during delete, retrying"),
            }
        }
        Err(Error::Unavailable {
            backend: BACKEND,
            message: format!(
                "delete {kind} {name:?}: changed concurrently {UPDATE_ATTEMPTS} times in a row"
            ),
        })
    }

    /// The version of the latest write (0 before the first).
    pub(crate) async fn version(&self) -> Result<u64> {
        let key = self.keys.version();
        Ok(self
            .get_raw(&key)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub(crate) async fn save_status(&self, name: &str, status: &McpStatus) -> Result<()> {
        let key = self.keys.status(name);
        let json = encode(status)?;
        let with = self.client.with_options(&self.options);
        self.call(
            || format!("set {key:?}"),
            with.set::<(), _, _>(&key, json, None, None, false),
        )
        .await
    }

    pub(crate) async fn load_status(&self, name: &str) -> Result<Option<McpStatus>> {
        let key = self.keys.status(name);
        self.get_raw(&key)
            .await?
            .map(|text| decode::<McpStatus>(&key, &text))
            .transpose()
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Backend {
        backend: BACKEND,
        message: format!("encode value: {e}"),
    })
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        name: key.to_owned(),
        message: e.to_string(),
    })
}

fn decode_record<T: Record>(key: &str, name: &str, text: &str) -> Result<T> {
    let value: T = decode(key, text)?;
    if value.name() != name {
        return Err(Error::Corrupt {
            name: key.to_owned(),
            message: format!("holds the {} of {:?}", T::KIND, value.name()),
        });
    }
    Ok(value)
}

/// The `version` of a stored definition or group, read leniently (`None` when it has none).
fn version_of(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("version")?
        .as_u64()
}

/// The `createdAt` of a stored definition or group, read leniently so that an update can
/// repair an entry that no longer decodes as a whole.
fn created_at_of(key: &str, text: &str) -> Option<Timestamp> {
    let parsed = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("createdAt")?.clone()).ok());
    if parsed.is_none() {
        tracing::warn!(key = %key, "stored value has no readable createdAt, using now");
    }
    parsed
}

/// Connection trouble is [`Error::Unavailable`]; an error reply from the server is
/// [`Error::Backend`].
fn map_error(what: &str, err: &fred::error::Error) -> Error {
    let details = err.details().trim_end_matches('.');
    let message = format!("{what}: {}", lowercase_first(details));
    let server_reply = details.starts_with("ERR ") || details.starts_with("WRONGTYPE");
    match err.kind() {
        ErrorKind::InvalidArgument
        | ErrorKind::InvalidCommand
        | ErrorKind::Parse
        | ErrorKind::Protocol
        | ErrorKind::NotFound
        | ErrorKind::Config
        | ErrorKind::Url => Error::Backend {
            backend: BACKEND,
            message,
        },
        ErrorKind::Unknown if server_reply => Error::Backend {
            backend: BACKEND,
            message,
        },
        _ => Error::Unavailable {
            backend: BACKEND,
            message,
        },
    }
}

/// `Connection closed` → `connection closed`, but `ERR …` and `IO …` stay as they are.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    if text.chars().nth(1).is_some_and(char::is_uppercase) {
        return text.to_owned();
    }
    first.to_lowercase().chain(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_and_replies_are_backend_errors() {
        let closed =
            fred::error::Error::new(ErrorKind::Canceled, "Connection closed unexpectedly.");
        let err = map_error("get \"a\"", &closed);
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "redis unavailable: get \"a\": connection closed unexpectedly"
        );
        let reply = fred::error::Error::new(ErrorKind::InvalidArgument, "WRONGTYPE Operation");
        assert!(matches!(map_error("get", &reply), Error::Backend { .. }));
    }

    #[test]
    fn created_at_is_read_from_partly_valid_json() {
        let t = created_at_of("k", r#"{"createdAt":"2026-01-02T03:04:05.678Z","bogus":1}"#);
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2026-01-02T03:04:05.678Z")
        );
        assert_eq!(created_at_of("k", "{not json"), None);
    }
}
