//! A run: open the sessions, warm up, measure a closed loop of `tools/call`, close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::{LoadArgs, Stop, Transport, Warmup};
use crate::client::Target;
use crate::jsonrpc::{self, CONTROL_SESSION, Outcome, request_id};
use crate::procstat;
use crate::report::{ErrorTally, Report, Watched};
use crate::session::{Answer, Session, SessionOpts, StdioLink};
use crate::stats::{Summary, median};

/// What every worker needs to know.
#[derive(Debug)]
struct Job {
    method: String,
    params: Vec<u8>,
    payload: usize,
    warmup: Warmup,
    stop: Stop,
}

/// Sessions opened, with their numbers.
struct Opened {
    sessions: Vec<(u64, Session)>,
    links: Vec<Arc<StdioLink>>,
    open_nanos: Vec<u64>,
    errors: ErrorTally,
}

/// Runs what `args` describe (already checked).
pub(crate) async fn run(args: &LoadArgs) -> anyhow::Result<Report> {
    let transport = args.transport();
    let target = match &args.url {
        Some(u) if transport != Transport::Stdio => {
            Some(Target::resolve(u.clone(), args.allow_remote).await?)
        }
        _ => None,
    };
    let opts = Arc::new(SessionOpts {
        protocol_version: args.protocol_version.clone(),
        headers: args.extra_headers(),
        timeout: args.timeout,
        open_timeout: args.open_timeout,
        max_message_bytes: args.max_message_bytes,
        allow_remote: args.allow_remote,
    });
    let (params, payload) = args.call_params()?;
    let count = args.idle_sessions.unwrap_or(args.sessions);
    let rss = |pid: Option<u32>| pid.map(procstat::rss_kib).transpose();
    let rss_before = rss(args.watch_pid)?;

    let mut opened = open(args, transport, target.as_ref(), &opts, count).await;
    let mut report = Report {
        mode: if args.idle_sessions.is_some() {
            "idle"
        } else {
            "load"
        },
        target: match &args.url {
            Some(u) => u.to_string(),
            None => args.stdio.join(" "),
        },
        transport,
        protocol_version: args.protocol_version.clone(),
        negotiated_version: opened
            .sessions
            .first()
            .map(|(_, s)| s.negotiated_version().to_owned()),
        tool: args.tool.clone(),
        payload_bytes: payload,
        sessions: count,
        sessions_opened: opened.sessions.len(),
        open_p50_ms: median(
            &opened
                .open_nanos
                .iter()
                .map(|&n| n as f64 / 1e6)
                .collect::<Vec<_>>(),
        ),
        warmup_calls: 0,
        calls: 0,
        errors: 0,
        error_samples: Vec::new(),
        duration_s: 0.0,
        req_per_s: 0.0,
        latency: None,
        load_average: None,
        client_cpu_us_per_call: None,
        watched: None,
        labels: args.labels(),
    };
    if opened.sessions.is_empty() {
        let why = opened
            .errors
            .samples()
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        bail!("no session could be opened: {why}");
    }

    if args.idle_sessions.is_some() {
        if !args.hold.is_zero() {
            tokio::time::sleep(args.hold).await;
        }
        let after = rss(args.watch_pid)?;
        report.watched = args
            .watch_pid
            .zip(rss_before.zip(after))
            .map(|(pid, (before, after))| Watched {
                pid,
                cpu_ms: 0.0,
                cpu_us_per_call: None,
                rss_kib_before: before,
                rss_kib_after: after,
                kib_per_session: Some(
                    (after as f64 - before as f64) / opened.sessions.len() as f64,
                ),
            });
    } else {
        let job = Arc::new(Job {
            method: args.method.clone(),
            params,
            payload,
            warmup: args.warmup,
            stop: args.stop(),
        });
        let sessions = std::mem::take(&mut opened.sessions);
        let (back, measured) = measure(sessions, job, args.watch_pid, &mut report).await;
        opened.sessions = back;
        opened.errors.merge(measured.errors);
        let cpu1 = args.watch_pid.map(procstat::cpu_ticks).transpose()?;
        let after = rss(args.watch_pid)?;
        if let (Some(pid), Some(before), Some(after)) = (args.watch_pid, rss_before, after) {
            let ticks = cpu1
                .unwrap_or(0)
                .saturating_sub(measured.cpu_ticks.unwrap_or(0));
            let cpu_ms = ticks as f64 * 1000.0 / procstat::TICKS_PER_SEC as f64;
            report.watched = Some(Watched {
                pid,
                cpu_ms,
                cpu_us_per_call: (report.calls > 0).then(|| cpu_ms * 1000.0 / report.calls as f64),
                rss_kib_before: before,
                rss_kib_after: after,
                kib_per_session: None,
            });
        }
    }
    report.error_samples = opened.errors.samples();
    close(opened, args.connect_concurrency).await;
    Ok(report)
}

/// Opens `count` sessions, `connect_concurrency` at a time.
async fn open(
    args: &LoadArgs,
    transport: Transport,
    target: Option<&Target>,
    opts: &Arc<SessionOpts>,
    count: usize,
) -> Opened {
    let mut out = Opened {
        sessions: Vec::with_capacity(count),
        links: Vec::new(),
        open_nanos: Vec::with_capacity(count),
        errors: ErrorTally::default(),
    };
    if transport == Transport::Stdio {
        for k in 0..args.stdio_processes.min(count) {
            let t = Instant::now();
            let init = request_id(CONTROL_SESSION + k as u64, 0);
            match StdioLink::spawn(&args.stdio, opts, init).await {
                Ok(link) => {
                    out.open_nanos.push(t.elapsed().as_nanos() as u64);
                    out.links.push(link);
                }
                Err(e) => out.errors.add(format!("opening: {e:#}")),
            }
        }
        if !out.links.is_empty() {
            for i in 0..count {
                let link = out.links[i % out.links.len()].clone();
                out.sessions.push((i as u64, Session::stdio(link)));
            }
        }
        return out;
    }
    let Some(target) = target else {
        return out;
    };
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut set = JoinSet::new();
    // Idle sessions give their request connection back at once, so opening many holds
    // one socket per session (the legacy SSE stream), not two.
    let release = args.idle_sessions.is_some();
    for i in 0..count as u64 {
        let (gate, target, opts) = (gate.clone(), target.clone(), opts.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let t = Instant::now();
            let mut s = match transport {
                Transport::Sse => Session::legacy_sse(target, opts, request_id(i, 0)).await,
                _ => Session::streamable(target, opts, request_id(i, 0)).await,
            };
            let took = t.elapsed();
            if release && let Ok(s) = &mut s {
                s.release_connection();
            }
            (i, s, took)
        });
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok((i, Ok(s), took)) => {
                out.open_nanos.push(took.as_nanos() as u64);
                out.sessions.push((i, s));
            }
            Ok((_, Err(e), _)) => out.errors.add(format!("opening: {e:#}")),
            Err(e) => out.errors.add(format!("opening: the task failed: {e}")),
        }
    }
    out.sessions.sort_by_key(|(i, _)| *i);
    out
}

/// What the measured phase left.
struct Measured {
    /// The watched process's CPU ticks when the measured window opened.
    cpu_ticks: Option<u64>,
    errors: ErrorTally,
}

/// The warm-up, then the measured window; fills the counters of `report`.
async fn measure(
    sessions: Vec<(u64, Session)>,
    job: Arc<Job>,
    watch_pid: Option<u32>,
    report: &mut Report,
) -> (Vec<(u64, Session)>, Measured) {
    let (warm_tx, mut warm_rx) = mpsc::channel::<()>(1);
    let (go_tx, go_rx) = watch::channel(None);
    let mut set = JoinSet::new();
    for (i, s) in sessions {
        set.spawn(worker(s, i, job.clone(), warm_tx.clone(), go_rx.clone()));
    }
    drop(warm_tx);
    // Every worker drops its sender when its warm-up is over.
    while warm_rx.recv().await.is_some() {}
    let cpu_ticks = watch_pid.and_then(|p| procstat::cpu_ticks(p).ok());
    let own = procstat::cpu_ticks(std::process::id()).ok();
    report.load_average = procstat::load_average();
    let t0 = Instant::now();
    let _ = go_tx.send(Some(t0 + job.stop.duration));
    let mut latencies = Vec::new();
    let mut errors = ErrorTally::default();
    let mut back = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(w) => {
                latencies.extend_from_slice(&w.latencies);
                report.warmup_calls += w.warmup_calls;
                report.calls += w.latencies.len() as u64;
                errors.merge(w.errors);
                back.push((w.index, w.session));
            }
            Err(e) => errors.add(format!("a session task failed: {e}")),
        }
    }
    let wall = t0.elapsed();
    let own = own.zip(procstat::cpu_ticks(std::process::id()).ok());
    report.client_cpu_us_per_call = own.filter(|_| !latencies.is_empty()).map(|(a, b)| {
        b.saturating_sub(a) as f64 * 1e6 / procstat::TICKS_PER_SEC as f64 / latencies.len() as f64
    });
    report.errors = errors.total;
    report.duration_s = wall.as_secs_f64();
    report.req_per_s = report.calls as f64 / wall.as_secs_f64().max(1e-9);
    report.latency = Summary::of_nanos(&mut latencies);
    back.sort_by_key(|(i, _)| *i);
    (back, Measured { cpu_ticks, errors })
}

struct WorkerOut {
    index: u64,
    session: Session,
    latencies: Vec<u64>,
    warmup_calls: u64,
    errors: ErrorTally,
}

/// Stops a session that fails this many calls in a row (a server that fails fast would
/// otherwise be hammered at full speed).
const MAX_ERRORS_IN_A_ROW: u32 = 100;

async fn worker(
    mut session: Session,
    index: u64,
    job: Arc<Job>,
    warm_done: mpsc::Sender<()>,
    mut go: watch::Receiver<Option<Instant>>,
) -> WorkerOut {
    let mut seq = 1;
    let mut warm = ErrorTally::default();
    let mut warmup_calls = 0;
    let warm_until = match job.warmup {
        Warmup::For(d) => Some(Instant::now() + d),
        Warmup::Calls(_) => None,
    };
    loop {
        let more = match job.warmup {
            Warmup::Calls(n) => warmup_calls < n,
            Warmup::For(_) => warm_until.is_some_and(|t| Instant::now() < t),
        };
        if !more || session.is_dead() {
            break;
        }
        let (ok, _) = call(&mut session, index, &mut seq, &job).await;
        warmup_calls += 1;
        if let Err(e) = ok {
            warm.note(format!("warm-up: {e}"));
        }
    }
    drop(warm_done);
    let deadline = loop {
        if let Some(d) = *go.borrow_and_update() {
            break d;
        }
        if go.changed().await.is_err() {
            break Instant::now();
        }
    };
    let mut errors = warm;
    let mut latencies = Vec::new();
    let mut in_a_row = 0;
    let mut done = 0;
    while job.stop.calls.is_none_or(|c| done < c) && Instant::now() < deadline && !session.is_dead()
    {
        let (ok, took) = call(&mut session, index, &mut seq, &job).await;
        done += 1;
        match ok {
            Ok(()) => {
                latencies.push(took.as_nanos() as u64);
                in_a_row = 0;
            }
            Err(e) => {
                errors.add(e);
                in_a_row += 1;
                if in_a_row == MAX_ERRORS_IN_A_ROW {
                    errors.note(format!(
                        "a session stopped after {MAX_ERRORS_IN_A_ROW} errors in a row"
                    ));
                    break;
                }
            }
        }
    }
    if session.is_dead() {
        errors.note("a session ended during the run".into());
    }
    WorkerOut {
        index,
        session,
        latencies,
        warmup_calls,
        errors,
    }
}

/// One request of the loop (a `tools/call` unless `--method` says otherwise): whether
/// it succeeded, and how long it took.
async fn call(
    session: &mut Session,
    index: u64,
    seq: &mut u64,
    job: &Job,
) -> (Result<(), String>, Duration) {
    let id = request_id(index, *seq);
    *seq += 1;
    let body = jsonrpc::request(id, &job.method, &job.params);
    let t = Instant::now();
    let r = session.call(id, body).await;
    let took = t.elapsed();
    (judge(r, job.payload), took)
}

/// Whether an answer counts as a success.
fn judge(r: anyhow::Result<Answer>, payload: usize) -> Result<(), String> {
    match r {
        Err(e) => {
            let mut m = format!("{e:#}");
            m.truncate(m.floor_char_boundary(300));
            Err(m)
        }
        Ok(Answer {
            outcome: Outcome::Error { code, message },
            ..
        }) => Err(format!("error {code}: {message}")),
        Ok(Answer {
            outcome: Outcome::Result { is_error: true, .. },
            ..
        }) => Err("the tool answered isError: true".into()),
        Ok(a) if a.bytes < payload => Err(format!(
            "short answer: {} bytes for a {payload}-byte payload",
            a.bytes
        )),
        Ok(_) => Ok(()),
    }
}

/// Ends every session, `concurrency` at a time, and stops stdio children.
async fn close(opened: Opened, concurrency: usize) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (_, s) in opened.sessions {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let _ = s.close().await;
        });
    }
    while set.join_next().await.is_some() {}
    for link in opened.links {
        link.shutdown().await;
    }
}
