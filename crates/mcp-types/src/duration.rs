//! Durations written as `"30s"`, `"1m30s"`, `"500ms"`; integer nanoseconds are accepted
//! for compatibility with older clients.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

/// Relative jitter applied to every retry and reconnect delay in the workspace (±20 %):
/// the core's reconnect back-off and the Admin API client's retries.
pub const JITTER: f64 = 0.2;

/// Formats a duration the way it is written in definitions: `1h2m3s`, `1m30s`, `500ms`,
/// `1.5s`, `250µs`, `0s`.
pub fn format(d: Duration) -> String {
    let total_ns = d.as_nanos();
    if total_ns == 0 {
        return "0s".to_owned();
    }
    if total_ns < 1_000 {
        return format!("{total_ns}ns");
    }
    if total_ns < 1_000_000 {
        return trim(format!("{:.3}", total_ns as f64 / 1e3), "µs");
    }
    if total_ns < 1_000_000_000 {
        return trim(format!("{:.3}", total_ns as f64 / 1e6), "ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let nanos = d.subsec_nanos();
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if nanos == 0 {
        if s > 0 || out.is_empty() {
            out.push_str(&format!("{s}s"));
        }
    } else {
        let frac = format!("{:.3}", f64::from(nanos) / 1e9);
        let frac = frac.trim_start_matches('0').trim_end_matches('0');
        let frac = frac.trim_end_matches('.');
        out.push_str(&format!("{s}{frac}s"));
    }
    out
}

fn trim(number: String, unit: &str) -> String {
    let n = if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        number
    };
    format!("{n}{unit}")
}

/// Parses `"30s"`, `"1m30s"`, `"1h 5m"`, `"500ms"`, `"1.5s"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".to_owned());
    }
    // Go-style fractional seconds ("1.5s") are not understood by humantime.
    if let Some(num) = t.strip_suffix('s')
        && !num.ends_with(['m', 'n', 'u', 'µ'])
        && num.contains('.')
        && let Ok(secs) = num.parse::<f64>()
    {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Serde `serialize_with` for a [`Duration`].
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Serde `deserialize_with` for a [`Duration`]: a string or integer nanoseconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Nanos(u64),
    }
    match Repr::deserialize(d).map_err(|_| {
        de::Error::custom("expected a duration string like \"30s\" or integer nanoseconds")
    })? {
        Repr::Text(t) => parse(&t).map_err(de::Error::custom),
        Repr::Nanos(n) => Ok(Duration::from_nanos(n)),
    }
}

/// The same, for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serde `serialize_with` for `Option<Duration>`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Serde `deserialize_with` for `Option<Duration>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_definitions_are_written() {
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_micros(1250)), "1.25ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn parses_strings_and_round_trips() {
        for (text, d) in [
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h", Duration::from_secs(7200)),
        ] {
            assert_eq!(parse(text).unwrap(), d, "{text}");
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn accepts_integer_nanoseconds() {
        #[derive(Deserialize)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }
        let t: T = serde_json::from_str(r#"{"d":30000000000}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(30));
        let bad = serde_json::from_str::<T>(r#"{"d":true}"#).err().unwrap();
        assert!(bad.to_string().contains("duration string"), "{bad}");
    }
}
