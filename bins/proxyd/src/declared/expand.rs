//! `${VAR}` in declared servers: replaced with the environment's value, so secrets stay out
//! of the files. `${VAR:-fallback}` gives a fallback, `$${` writes a literal `${`. Errors
//! name the variable, never a value.

use serde_json::Value;

/// Expands every string of `value` (recursively; keys are left alone). Each problem is
/// pushed as `field: message`, the field path starting at `path`.
pub(super) fn expand_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(s) => match expand(s, env) {
            Ok(Some(new)) => *s = new,
            Ok(None) => {}
            Err(why) => problems.push(format!("{path}: {why}")),
        },
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand_value(v, &format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_value(v, &child, env, problems);
            }
        }
        _ => {}
    }
}

/// The expanded text, or `None` when `text` holds nothing to expand.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if !text.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated ${ (write $${ for a literal ${)".into());
            };
            let inner = &after[..end];
            let (name, fallback) = match inner.split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(format!(
                    "${{{inner}}} does not name an environment variable"
                ));
            }
            match (env(name), fallback) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(f)) => out.push_str(f),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-fallback}} \
                         for a fallback)"
                    ));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    #[test]
    fn variables_fallbacks_and_literals() {
        let e = |t: &str| expand(t, &env);
        assert_eq!(
            e("Bearer ${TOKEN}").unwrap().as_deref(),
            Some("Bearer s3cret")
        );
        assert_eq!(e("${NOPE:-x}${TOKEN}").unwrap().as_deref(), Some("xs3cret"));
        assert_eq!(e("$${TOKEN} $5").unwrap().as_deref(), Some("${TOKEN} $5"));
        assert_eq!(e("plain $HOME").unwrap(), None);
        let err = e("${NOPE}").unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
        assert!(e("${TOKEN").unwrap_err().contains("unterminated"));
        assert!(e("${1x}").unwrap_err().contains("does not name"));
    }

    #[test]
    fn problems_name_the_field_and_the_variable_never_a_value() {
        let mut v = json!({"env": {"A": "${TOKEN}", "B": "${MISSING}"}, "args": ["${MISSING}"]});
        let mut problems = Vec::new();
        expand_value(&mut v, "", &env, &mut problems);
        assert_eq!(v["env"]["A"], "s3cret");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("env.B: environment variable MISSING"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("args[0]:"), "{problems:?}");
        assert!(!problems.join(" ").contains("s3cret"));
    }
}
