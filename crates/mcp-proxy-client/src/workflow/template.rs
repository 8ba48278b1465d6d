//! `{{ .env.NAME }}` placeholders in `env` and `headers` values.

use std::collections::HashMap;
use std::fmt;

use crate::error::Error;

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// A value with `{{ .env.NAME }}` placeholders, resolved from a map the caller passes.
///
/// A placeholder whose variable is missing is an error, never an empty string. Any other
/// `{{ … }}` is refused when parsing, so a typo cannot slip through as literal text.
/// `Debug` shows the variable names only: literal parts may be secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; the error says what is wrong with the placeholder.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("unclosed placeholder: \"{{\" without \"}}\"".into());
            };
            let inner = after[..close].trim();
            let name = inner
                .strip_prefix(".env.")
                .filter(|n| is_variable_name(n))
                .ok_or_else(|| {
                    format!(
                        "unsupported placeholder \"{{{{ {inner} }}}}\": only {{{{ .env.NAME }}}} is supported"
                    )
                })?;
            parts.push(Part::Var(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The variables the template needs, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Substitutes every placeholder; [`Error::MissingVariable`] names the field and the
    /// first variable `vars` lacks.
    pub fn render(&self, field: &str, vars: &HashMap<String, String>) -> Result<String, Error> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    out.push_str(vars.get(v).ok_or_else(|| Error::MissingVariable {
                        field: field.to_owned(),
                        name: v.clone(),
                    })?)
                }
            }
        }
        Ok(out)
    }

    /// Whether literal text contains CR or LF.
    pub(crate) fn has_line_break(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Text(t) if t.contains(['\r', '\n'])))
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("variables", &self.variables().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn substitutes_placeholders_with_or_without_spaces() {
        let t = Template::parse("Bearer {{ .env.TOKEN }}/{{.env.REGION}}!").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["TOKEN", "REGION"]);
        let out = t
            .render("h", &vars(&[("TOKEN", "abc"), ("REGION", "eu")]))
            .unwrap();
        assert_eq!(out, "Bearer abc/eu!");
        let plain = Template::parse("no placeholders } here").unwrap();
        assert_eq!(
            plain.render("h", &vars(&[])).unwrap(),
            "no placeholders } here"
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let t = Template::parse("{{ .env.PRESENT }}{{ .env.ABSENT }}").unwrap();
        let err = t
            .render("mcps[0].env.KEY", &vars(&[("PRESENT", "x")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mcps[0].env.KEY: placeholder {{ .env.ABSENT }} has no value"
        );
        // Present but empty is a value.
        let t = Template::parse("{{ .env.EMPTY }}").unwrap();
        assert_eq!(t.render("f", &vars(&[("EMPTY", "")])).unwrap(), "");
    }

    #[test]
    fn refuses_other_placeholders() {
        for (bad, why) in [
            ("{{ .secrets.X }}", "unsupported placeholder"),
            ("{{ env.X }}", "unsupported placeholder"),
            ("{{ .env.1X }}", "unsupported placeholder"),
            ("{{ .env.A-B }}", "unsupported placeholder"),
            ("x {{ .env.X", "unclosed"),
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_hides_literal_text() {
        let t = Template::parse("sk-live-123 {{ .env.X }}").unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains("sk-live") && d.contains("\"X\""), "{d}");
    }
}
