//! What a run found, as text or as one JSON object.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::cli::Transport;
use crate::stats::Summary;

/// One run (`mcp-bench … --json` prints this).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `load` or `idle`.
    pub(crate) mode: &'static str,
    pub(crate) target: String,
    pub(crate) transport: Transport,
    pub(crate) protocol_version: String,
    pub(crate) negotiated_version: Option<String>,
    pub(crate) tool: String,
    pub(crate) payload_bytes: usize,
    pub(crate) sessions: usize,
    pub(crate) sessions_opened: usize,
    /// Median time to open one session (initialize + initialized), in ms.
    pub(crate) open_p50_ms: Option<f64>,
    pub(crate) warmup_calls: u64,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) error_samples: Vec<ErrorSample>,
    pub(crate) duration_s: f64,
    pub(crate) req_per_s: f64,
    pub(crate) latency: Option<Summary>,
    /// The machine's 1-minute load average when the measured window opened.
    pub(crate) load_average: Option<f64>,
    /// This client's own CPU per measured call (to show it is not the bottleneck).
    pub(crate) client_cpu_us_per_call: Option<f64>,
    pub(crate) watched: Option<Watched>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// An error message and how often it happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ErrorSample {
    pub(crate) message: String,
    pub(crate) count: u64,
}

/// The `--watch-pid` process over the run.
#[derive(Debug, Serialize)]
pub(crate) struct Watched {
    pub(crate) pid: u32,
    /// CPU (user + system) over the measured window, in ms (10 ms resolution).
    pub(crate) cpu_ms: f64,
    pub(crate) cpu_us_per_call: Option<f64>,
    /// RSS before the sessions were opened.
    pub(crate) rss_kib_before: u64,
    /// RSS at the end of the measured window (idle: once every session is open).
    pub(crate) rss_kib_after: u64,
    /// Idle runs: `(after - before) / sessions opened`.
    pub(crate) kib_per_session: Option<f64>,
}

/// Counts errors by message, keeping at most `MAX_KINDS` distinct messages.
#[derive(Debug, Default)]
pub(crate) struct ErrorTally {
    counts: HashMap<String, u64>,
    pub(crate) total: u64,
}

const MAX_KINDS: usize = 16;

impl ErrorTally {
    pub(crate) fn add(&mut self, message: String) {
        self.total += 1;
        if self.counts.len() < MAX_KINDS || self.counts.contains_key(&message) {
            *self.counts.entry(message).or_default() += 1;
        } else {
            *self.counts.entry("(other errors)".into()).or_default() += 1;
        }
    }

    /// Records a message without counting it as a failed call (warm-up errors, notes).
    pub(crate) fn note(&mut self, message: String) {
        let total = self.total;
        self.add(message);
        self.total = total;
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.total += other.total;
        for (m, n) in other.counts {
            let key = if self.counts.len() < MAX_KINDS || self.counts.contains_key(&m) {
                m
            } else {
                "(other errors)".into()
            };
            *self.counts.entry(key).or_default() += n;
        }
    }

    /// The most frequent messages first.
    pub(crate) fn samples(&self) -> Vec<ErrorSample> {
        let mut v: Vec<ErrorSample> = self
            .counts
            .iter()
            .map(|(m, &n)| ErrorSample {
                message: m.clone(),
                count: n,
            })
            .collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });
        v
    }
}

impl Report {
    /// The human-readable form.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let negotiated = self.negotiated_version.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "{:?} {} · protocol {} (server chose {negotiated})\n",
            self.transport, self.target, self.protocol_version
        ));
        let open = self
            .open_p50_ms
            .map_or_else(|| "-".into(), |v| format!("{v:.2} ms"));
        out.push_str(&format!(
            "sessions {} opened of {} (median open {open})\n",
            self.sessions_opened, self.sessions
        ));
        if self.mode == "load" {
            out.push_str(&format!(
                "tool {} · payload {} bytes · warm-up calls {}\n",
                self.tool, self.payload_bytes, self.warmup_calls
            ));
            out.push_str(&format!(
                "calls {} in {:.2} s · {:.1} req/s · errors {}\n",
                self.calls, self.duration_s, self.req_per_s, self.errors
            ));
            if let Some(l) = &self.latency {
                out.push_str(&format!(
                    "latency p50 {:.3} ms · p90 {:.3} ms · p99 {:.3} ms · mean {:.3} ms · min {:.3} ms · max {:.3} ms\n",
                    l.p50_us / 1e3,
                    l.p90_us / 1e3,
                    l.p99_us / 1e3,
                    l.mean_us / 1e3,
                    l.min_us / 1e3,
                    l.max_us / 1e3
                ));
            }
        }
        if let Some(c) = self.client_cpu_us_per_call {
            out.push_str(&format!("mcp-bench itself: {c:.1} µs CPU per call\n"));
        }
        for e in &self.error_samples {
            out.push_str(&format!("  {} × {}\n", e.count, e.message));
        }
        if let Some(w) = &self.watched {
            let per_call = w
                .cpu_us_per_call
                .map_or_else(String::new, |c| format!(" · {c:.1} µs CPU per call"));
            let per_session = w
                .kib_per_session
                .map_or_else(String::new, |k| format!(" · {k:.1} KiB per session"));
            out.push_str(&format!(
                "pid {}: cpu {:.0} ms{per_call} · rss {:.1} → {:.1} MiB{per_session}\n",
                w.pid,
                w.cpu_ms,
                w.rss_kib_before as f64 / 1024.0,
                w.rss_kib_after as f64 / 1024.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_is_bounded_and_sorted() {
        let mut t = ErrorTally::default();
        for i in 0..40 {
            t.add(format!("e{}", i % 20));
        }
        t.add("e0".into());
        assert_eq!(t.total, 41);
        let s = t.samples();
        assert_eq!(s.len(), MAX_KINDS + 1);
        assert_eq!((s[0].message.as_str(), s[0].count), ("(other errors)", 8));
        assert_eq!((s[1].message.as_str(), s[1].count), ("e0", 3));
        assert_eq!(s.iter().map(|e| e.count).sum::<u64>(), 41);
        let mut u = ErrorTally::default();
        u.add("e0".into());
        u.merge(t);
        assert_eq!(u.total, 42);
        let e0 = u.samples().into_iter().find(|e| e.message == "e0").unwrap();
        assert_eq!(e0.count, 4);
    }
}
