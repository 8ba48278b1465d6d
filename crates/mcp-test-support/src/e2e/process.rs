//! Probes of a running process (`/proc`), its log, and signals.

use std::time::Duration;

use crate::proxyd::Proxyd;

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open file descriptors of a process (`/proc/PID/fd`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident memory and open descriptors of a process at a quiet moment, to compare with
/// later: a fault must not leave either grown.
#[derive(Debug)]
pub struct Baseline {
    pid: u32,
    rss_kib: u64,
    fds: usize,
}

/// How far above its baseline a process may stay after a fault: allocators keep some
/// freed memory, and pooled client connections come and go.
pub const RSS_SLACK_KIB: u64 = 64 * 1024;
pub const FD_SLACK: usize = 16;

impl Baseline {
    pub fn take(pid: u32) -> Self {
        Self {
            pid,
            rss_kib: rss_kib(pid),
            fds: open_fds(pid),
        }
    }

    /// Waits (bounded) until memory and descriptors are back near the baseline.
    pub async fn assert_back(&self, what: &str) {
        let (rss, fds) = crate::eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            &format!("{what}: back to the baseline"),
            || async {
                let (rss, fds) = (rss_kib(self.pid), open_fds(self.pid));
                if rss <= self.rss_kib + RSS_SLACK_KIB && fds <= self.fds + FD_SLACK {
                    Ok((rss, fds))
                } else {
                    Err(format!(
                        "rss {} KiB -> {rss} KiB, fds {} -> {fds}",
                        self.rss_kib, self.fds
                    ))
                }
            },
        )
        .await;
        eprintln!(
            "{what}: rss {} KiB -> {rss} KiB, fds {} -> {fds}",
            self.rss_kib, self.fds
        );
    }
}

/// Waits (at most 30 s) for a log line of `p` holding every one of `needles`; returns it.
pub async fn log_line(p: &Proxyd, needles: &[&str]) -> String {
    crate::eventually(
        Duration::from_secs(30),
        Duration::from_millis(25),
        &format!("a log line with {needles:?}"),
        || async {
            let log = p.log();
            log.iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned()
                .ok_or_else(|| format!("the log:\n{}", log.join("\n")))
        },
    )
    .await
}

/// Lines of `p`'s log holding `needle`.
pub fn log_count(p: &Proxyd, needle: &str) -> usize {
    p.log().iter().filter(|l| l.contains(needle)).count()
}

/// The number after `pid ` in a `mock-stdio` line.
pub fn pid_in(line: &str) -> u32 {
    line.split("pid ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

/// Whether process `pid` is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|state| !state.starts_with('Z') && !state.starts_with('X'))
}

/// `kill -<signal> <pid>`.
pub async fn signal(pid: u32, signal: &str) {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
