//! The idle run: what `hookline serve` costs with nothing to do, and how fast it wakes when
//! work arrives. One webhook; `serve` settles, then its CPU is read over a quiet window;
//! then single events are posted one at a time, each after a pause long enough for every
//! consumer to be asleep, and each is timed from its 202 to its arrival at the endpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::receiver::Receiver;
use crate::stats::{read_process, Latency};
use crate::throughput::{publish, start_serve, subscribe, Scratch};
use crate::{intake_body, pad_for, BenchError};

/// What an idle run does.
#[derive(Debug, Clone, Serialize)]
pub struct IdleOptions {
    /// Seconds of the quiet window whose CPU is measured.
    pub quiet_secs: u64,
    /// Events posted after it, one at a time.
    pub wakes: usize,
    /// The pause before each of them.
    pub pause: Duration,
}

/// The run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// What was run.
    pub options: IdleOptions,
    /// `serve`'s CPU seconds over the quiet window.
    pub quiet_cpu_s: f64,
    /// That as a share of one core, in percent.
    pub quiet_cpu_pct: f64,
    /// From each event's 202 to its arrival (the consumers woke, fanned out, delivered).
    pub wake: Latency,
    /// From each event's POST to its arrival.
    pub end_to_end: Latency,
}

/// Runs it against `hookline` (the binary).
pub async fn run(hookline: &Path, options: &IdleOptions) -> Result<IdleReport, BenchError> {
    let receiver = Receiver::start(options.wakes + 1, 1)
        .await
        .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
    let scratch = Scratch::new()?;
    let (serve, base, token) =
        start_serve(hookline, &scratch, hookline::DELIVER_WORKERS, &[]).await?;
    let pid = serve.pid()?;
    let client = reqwest::Client::new();
    subscribe(&client, &base, &token, &receiver.url(), "idle", 1).await?;
    // Startup work (migrations, the first metrics upkeep, the endpoint check) settles first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = || {
        read_process(&pid)
            .map(|r| r.cpu_s)
            .ok_or_else(|| BenchError::Run("cannot read serve's /proc entry".into()))
    };
    let before = cpu()?;
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.quiet_secs.max(1))).await;
    let quiet_cpu_s = cpu()? - before;
    let quiet_cpu_pct = quiet_cpu_s / quiet.elapsed().as_secs_f64() * 100.0;

    let events_url = format!("{base}/v1/events");
    let pad = pad_for(512);
    let (mut wake, mut end_to_end) = (Vec::new(), Vec::new());
    for seq in 0..options.wakes {
        tokio::time::sleep(options.pause).await;
        let published = publish(&client, &events_url, &token, &intake_body(seq, pad)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let arrived = loop {
            if let Some(at) = receiver.arrival(seq, 0) {
                break at;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Run(format!(
                    "event {seq} did not arrive within 30 s of its 202"
                )));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        wake.push(arrived.saturating_duration_since(published.answered));
        end_to_end.push(arrived.saturating_duration_since(published.sent));
    }
    Ok(IdleReport {
        options: options.clone(),
        quiet_cpu_s,
        quiet_cpu_pct,
        wake: Latency::of(wake),
        end_to_end: Latency::of(end_to_end),
    })
}

/// The report as a table.
pub fn render(r: &IdleReport) -> String {
    format!(
        "idle `hookline serve`, one webhook\n\
         quiet {} s: {:.2} CPU-s = {:.3} % of a core\n\
         {} events, each after {:?} idle: 202 -> arrival p50 {:.2} ms, max {:.2} ms; \
         POST -> arrival p50 {:.2} ms, max {:.2} ms\n",
        r.options.quiet_secs,
        r.quiet_cpu_s,
        r.quiet_cpu_pct,
        r.options.wakes,
        r.options.pause,
        r.wake.p50_ms,
        r.wake.max_ms,
        r.end_to_end.p50_ms,
        r.end_to_end.max_ms,
    )
}
