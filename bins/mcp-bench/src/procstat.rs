//! CPU time and resident memory of another process, from `/proc`.

use anyhow::{Context, bail};

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`, 100 on Linux).
pub(crate) const TICKS_PER_SEC: u64 = 100;

/// `utime + stime` of process `pid` (all its threads), in ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid}: cannot read /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("process {pid}: unexpected /proc/{pid}/stat"))
}

/// `VmRSS` of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid}: cannot read /proc/{pid}/status"))?;
    parse_rss_kib(&status).with_context(|| format!("process {pid}: no VmRSS in /proc/{pid}/status"))
}

/// The 1-minute load average of the machine (`/proc/loadavg`).
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and ')'; the
    // fields after the last ')' start at field 3, so utime and stime (14, 15) are the
    // 12th and 13th of them.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
        bail!("too few fields");
    };
    Ok(u.parse::<u64>()? + s.parse::<u64>()?)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_after_an_awkward_command_name() {
        let stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 325);
        assert!(parse_cpu_ticks("1 (x) S 1").is_err());
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tproxyd\nVmPeak:\t  20000 kB\nVmRSS:\t    9876 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(9876));
        assert_eq!(parse_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        cpu_ticks(me).unwrap();
        assert!(load_average().is_some_and(|l| l >= 0.0));
    }
}
