//! Putting stored secrets back where a client sent their placeholders.
//!
//! Responses never show secrets: `env` and `headers` values read `***`, `authTokens` read
//! `***:<digest>` ([`Secret::handle`]). A client that GETs a definition, edits it and PUTs
//! it back sends those placeholders; each must stand for exactly one stored secret.
//! [`McpDefinition::restore_secrets`] puts back those that do; validation refuses every
//! placeholder left ([`McpDefinition::validate`]), so a placeholder never becomes a secret.

use crate::definition::McpDefinition;
use crate::secret::{HANDLE_PREFIX, REDACTED, Secret};
use crate::validate::ValidationErrors;

impl McpDefinition {
    /// Replaces every placeholder that stands for exactly one secret of `stored` (the
    /// definition being replaced) by that secret:
    ///
    /// - `env.K` / `headers.K` = `***` keeps the value stored under `K` (header names
    ///   match case-insensitively);
    /// - `authTokens[i]` = `***:<digest>` keeps the stored token of that handle, wherever
    ///   it stands in the list.
    ///
    /// Anything else is left as it is: a bare `***` in `authTokens` (a position in a list
    /// cannot say which token), a handle that names no stored token, a placeholder with
    /// nothing stored under its key, a handle in `env` or `headers`. Validation refuses
    /// those.
    pub fn restore_secrets(&mut self, stored: &McpDefinition) {
        for (key, value) in &mut self.env {
            if value.expose() == REDACTED
                && let Some(old) = stored.env.get(key)
            {
                *value = old.clone();
            }
        }
        for (key, value) in &mut self.headers {
            let mut found = stored
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v);
            if value.expose() == REDACTED
                && let (Some(old), None) = (found.next(), found.next())
            {
                *value = old.clone();
            }
        }
        restore_tokens(&mut self.auth_tokens, &stored.auth_tokens, &stored.name);
    }

    /// Refuses every placeholder: where it stood for a stored secret, it has been replaced
    /// by then.
    pub(crate) fn check_placeholders(&self, errs: &mut ValidationErrors) {
        for (kind, values) in [("env", &self.env), ("headers", &self.headers)] {
            for (key, value) in values {
                let field = format!("{kind}.{key}");
                if value.expose() == REDACTED {
                    errs.push(
                        field,
                        format!(
                            "{REDACTED:?} keeps a stored value, and none is stored under this \
                             name: send the value itself"
                        ),
                    );
                } else if value.expose().starts_with(HANDLE_PREFIX) {
                    errs.push(
                        field,
                        format!(
                            "\"{HANDLE_PREFIX}…\" handles stand for stored authTokens only; \
                             send {REDACTED:?} to keep a stored value, or the value itself"
                        ),
                    );
                }
            }
        }
        for (i, token) in self.auth_tokens.iter().enumerate() {
            let field = format!("authTokens[{i}]");
            if token.expose() == REDACTED {
                errs.push(
                    field,
                    format!(
                        "a bare {REDACTED:?} cannot say which stored token to keep: send the \
                         \"{HANDLE_PREFIX}…\" handle a GET shows for it, or a new token"
                    ),
                );
            } else if token.expose().starts_with(HANDLE_PREFIX) {
                errs.push(
                    field,
                    format!(
                        "{:?} names no stored token (or several): send a handle a GET shows, \
                         or a new token",
                        token.expose()
                    ),
                );
            }
        }
    }
}

/// Replaces each handle in `tokens` that names exactly one of `stored` (handles scoped by
/// `scope`, the name of what holds them) by that token, wherever it stands in the list.
pub(crate) fn restore_tokens(tokens: &mut [Secret], stored: &[Secret], scope: &str) {
    for token in tokens {
        if !token.expose().starts_with(HANDLE_PREFIX) {
            continue;
        }
        let mut matches: Vec<&Secret> = stored
            .iter()
            .filter(|t| t.handle(scope) == token.expose())
            .collect();
        matches.dedup_by(|a, b| a.expose() == b.expose());
        if let [one] = matches.as_slice() {
            *token = (*one).clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportKind;

    fn stored() -> McpDefinition {
        let mut d = McpDefinition::http("web", TransportKind::StreamableHttp, "http://x/mcp");
        d.headers.insert("X-Key".into(), "real-key".into());
        d.auth_tokens = vec!["compromised-token".into(), "good-token-123".into()];
        d
    }

    #[test]
    fn a_round_trip_of_the_redacted_form_keeps_every_secret() {
        let old = stored();
        let mut new = old.redacted();
        new.restore_secrets(&old);
        assert_eq!(new, old);
        new.validate().unwrap();
    }

    #[test]
    fn a_kept_token_is_the_one_its_handle_names_not_the_one_in_its_place() {
        let old = stored();
        let shown = old.redacted();
        // Keep only the good token, which GET showed second.
        let mut new = old.clone();
        new.auth_tokens = vec![shown.auth_tokens[1].clone()];
        new.restore_secrets(&old);
        assert_eq!(new.auth_tokens, vec![Secret::new("good-token-123")]);
    }

    #[test]
    fn placeholders_that_stand_for_nothing_are_refused() {
        let old = stored();
        let mut new = old.redacted();
        new.auth_tokens = vec![
            Secret::new(REDACTED),
            Secret::new("***:000000000000"),
            Secret::new("a-new-token-456"),
        ];
        new.headers.insert("X-New".into(), REDACTED.into());
        new.headers.insert("x-key".into(), REDACTED.into());
        new.headers.insert("X-Handle".into(), "***:abc".into());
        new.restore_secrets(&old);
        assert_eq!(
            new.headers["x-key"].expose(),
            "real-key",
            "case-insensitive"
        );
        let errs = new.validate().unwrap_err();
        for field in [
            "authTokens[0]",
            "authTokens[1]",
            "headers.X-New",
            "headers.X-Handle",
        ] {
            assert!(errs.has(field), "{field} missing from {errs}");
        }
        assert!(!errs.has("authTokens[2]"), "{errs}");
        // A new definition has nothing stored: every placeholder is refused.
        let errs = old.redacted().validate().unwrap_err();
        assert!(
            errs.has("headers.X-Key") && errs.has("authTokens[0]"),
            "{errs}"
        );
    }
}
