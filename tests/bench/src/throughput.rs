//! Floor against pipeline, in one run on one machine. Both deliver to the same loopback
//! [`Receiver`]; both run as child processes of this one (`hookline-bench floor`,
//! `hookline serve`), so each one's CPU seconds and peak RSS are its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::floor::FloorReport;
use super::receiver::Receiver;
use super::stats::{read_process, Latency, ProcessReading};
use super::{intake_body, pad_for, BenchError};
use hookline::progress::Progress;
use hookline::{DELIVER_CONSUMER, DELIVER_WORKERS};

/// How big a run is.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputOptions {
    /// Webhooks subscribed to every event (W).
    pub webhooks: usize,
    /// Events posted as fast as intake takes them (E); the floor sends E × W requests.
    pub events: usize,
    /// Delivered body size, in bytes.
    pub body_bytes: usize,
    /// Delivery consumers of the pipeline; the floor uses as many × the batch size in flight.
    pub deliver_workers: usize,
    /// Offered load of the latency run, in events per second.
    pub rate: u32,
    /// Events of the latency run (0 skips it).
    pub rate_events: usize,
    /// Event POSTs in flight at once in the throughput run.
    pub post_concurrency: usize,
    /// Expired events and attempts (as many of each) in the store when `serve` starts: its
    /// retention sweeper deletes them while the runs go on.
    pub expired_rows: usize,
    /// Past events (`booking.created`, App A1) in the event log when `serve` starts, which a
    /// backfill to one more webhook sends while the runs go on.
    pub backfill_events: usize,
}

impl Default for ThroughputOptions {
    fn default() -> Self {
        Self {
            webhooks: 10,
            events: 20_000,
            body_bytes: 1024,
            deliver_workers: DELIVER_WORKERS,
            rate: 1000,
            rate_events: 5000,
            post_concurrency: 16,
            expired_rows: 0,
            backfill_events: 0,
        }
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Deliveries received.
    pub deliveries: u64,
    /// Deliveries per second.
    pub deliveries_per_s: f64,
    /// Floor: send → answer; pipeline: event POSTed → delivery received.
    pub latency: Latency,
    /// CPU seconds and peak RSS of the process doing the work.
    pub process: ProcessReading,
    /// Pipeline: event POSTs answered 429 (backpressure) and sent again; floor: 0.
    pub refused: u64,
}

/// The pipeline at a fixed offered load.
#[derive(Debug, Clone, Serialize)]
pub struct OfferedLoad {
    /// Events per second offered.
    pub rate: u32,
    /// Events offered.
    pub events: usize,
    /// Deliveries per second over the run.
    pub deliveries_per_s: f64,
    /// Event POSTed (its first try) → delivery received.
    pub latency: Latency,
    /// Event POSTs answered 429 (backpressure) and sent again after `Retry-After`.
    pub refused: u64,
    /// Accepted POST sent → delivery received: the time inside Hookline, without the
    /// publisher's waits after a 429.
    pub accepted_latency: Latency,
    /// 202 answered → delivery received: how long accepted work waits to be delivered, the
    /// bound backpressure keeps.
    pub queued_latency: Latency,
    /// `serve`'s CPU seconds over the run (its first POST to its last delivery).
    pub cpu_s: f64,
    /// That per delivery, in milliseconds.
    pub cpu_per_delivery_ms: f64,
}

/// Everything one `hookline bench` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// The run's size.
    pub options: ThroughputOptions,
    /// Requests in flight at once, both sides.
    pub concurrency: usize,
    /// The HTTP client alone.
    pub floor: Side,
    /// `hookline serve`, intake to delivery.
    pub pipeline: Side,
    /// Pipeline deliveries/s over floor deliveries/s.
    pub ratio: f64,
    /// The pipeline at `options.rate`, if run.
    pub offered_load: Option<OfferedLoad>,
    /// Backfilled deliveries received during the runs, when a backfill ran beside them.
    pub backfill_delivered: Option<u64>,
}

/// A child process killed when dropped, so a failed run leaves nothing behind.
pub(crate) struct Reaped(pub(crate) Child);

impl Reaped {
    /// The process id, for reading its `/proc` entry.
    pub(crate) fn pid(&self) -> Result<String, BenchError> {
        self.0
            .id()
            .map(|id| id.to_string())
            .ok_or_else(|| BenchError::Setup("serve exited at once".into()))
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A scratch directory removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new() -> Result<Self, BenchError> {
        let nanos = super::unique_suffix();
        let dir =
            std::env::temp_dir().join(format!("hookline-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The two programs a run starts: `hookline` (for `serve`) and `hookline-bench` (for `floor`).
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `hookline` binary.
    pub hookline: PathBuf,
    /// The `hookline-bench` binary.
    pub bench: PathBuf,
}

/// Runs the floor, then the pipeline, then the pipeline at the offered load.
pub async fn run(
    programs: &Programs,
    options: &ThroughputOptions,
    progress: Progress,
) -> Result<ThroughputReport, BenchError> {
    let concurrency = options.deliver_workers.max(1) * DELIVER_CONSUMER.batch_size;
    let pairs = options.webhooks * options.events;
    let floor = run_floor(
        &programs.bench,
        pairs,
        concurrency,
        options.body_bytes,
        progress,
    )
    .await?;
    let floor = Side {
        deliveries: floor.delivered,
        deliveries_per_s: floor.delivered as f64 / floor.elapsed_s.max(f64::EPSILON),
        latency: floor.latency,
        process: floor.process,
        refused: 0,
    };
    let (pipeline, offered_load, backfill_delivered) =
        run_pipeline(&programs.hookline, options, progress).await?;
    Ok(ThroughputReport {
        options: options.clone(),
        concurrency,
        ratio: pipeline.deliveries_per_s / floor.deliveries_per_s.max(f64::EPSILON),
        floor,
        pipeline,
        offered_load,
        backfill_delivered,
    })
}

async fn run_floor(
    exe: &Path,
    count: usize,
    concurrency: usize,
    body_bytes: usize,
    progress: Progress,
) -> Result<FloorReport, BenchError> {
    let receiver = Receiver::start(0, 1)
        .await
        .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
    let child = Command::new(exe)
        .args(["floor", "--url", &receiver.url()])
        .args(["--count", &count.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--body-bytes", &body_bytes.to_string()])
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    tokio::pin!(child);
    let bar = progress.bar(count as u64, "floor: requests");
    let output = loop {
        tokio::select! {
            output = &mut child => break output,
            () = tokio::time::sleep(Duration::from_millis(200)) => bar.set_position(receiver.posts()),
        }
    }
    .map_err(|e| BenchError::Setup(format!("{} floor: {e}", exe.display())))?;
    bar.finish_and_clear();
    if !output.status.success() {
        return Err(BenchError::Run(format!(
            "hookline-bench floor exited with {}",
            output.status
        )));
    }
    let report: FloorReport = serde_json::from_slice(&output.stdout)
        .map_err(|e| BenchError::Run(format!("hookline-bench floor printed no report: {e}")))?;
    if receiver.posts() != count as u64 {
        return Err(BenchError::Run(format!(
            "the receiver got {} of the floor's {count} requests",
            receiver.posts()
        )));
    }
    Ok(report)
}

/// `hookline serve` on a scratch database, and what it printed: its address and a dev token.
pub(crate) async fn start_serve(
    exe: &Path,
    scratch: &Scratch,
    workers: usize,
    env: &[(&str, &str)],
) -> Result<(Reaped, String, String), BenchError> {
    let log = std::fs::File::create(scratch.0.join("serve.log"))
        .map_err(|e| BenchError::Setup(format!("serve log: {e}")))?;
    let mut child = Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(scratch.0.join("bench.db"))
        .env("HOOKLINE_DELIVER_WORKERS", workers.to_string())
        .envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("HOOKLINE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("{} serve: {e}", exe.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Setup("serve's stdout".into()))?;
    let child = Reaped(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut token) = (None, None);
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("Hookline listening on ") {
                base = Some(url.trim().to_owned());
            } else if let Some(t) = line.trim().strip_prefix("export HOOKLINE_TOKEN=") {
                token = Some(t.to_owned());
            }
            if base.is_some() && token.is_some() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
    // Keep reading: a closed pipe would fail serve's later prints.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match (base, token) {
        (Some(base), Some(token)) => Ok((child, base, token)),
        _ => Err(BenchError::Setup(format!(
            "hookline serve did not print its address and token within 60 s; see {}",
            scratch.0.join("serve.log").display()
        ))),
    }
}

/// POSTs `body` to `url` with the bearer token.
async fn send_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<reqwest::Response, BenchError> {
    client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| BenchError::Run(format!("POST {url}: {e}")))
}

/// POSTs `body` to `url` with the bearer token; anything but `expect` is an error.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    expect: u16,
) -> Result<(), BenchError> {
    let response = send_json(client, url, token, body).await?;
    let status = response.status().as_u16();
    if status != expect {
        let text = response.text().await.unwrap_or_default();
        return Err(BenchError::Run(format!("POST {url}: {status} {text}")));
    }
    Ok(())
}

/// Creates `n` webhooks of App A1 on `serve` at `base`, named `<label> <i>`, each for the
/// bench's event type and posting to `<receiver>/w/<i>`.
pub(crate) async fn subscribe(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    receiver: &str,
    label: &str,
    n: usize,
) -> Result<(), BenchError> {
    for i in 0..n {
        let webhook = serde_json::json!({
            "name": format!("{label} {i}"),
            "url": format!("{receiver}/w/{i}"),
            "eventTypes": [super::BENCH_EVENT_TYPE],
        });
        post(
            client,
            &format!("{base}/v1/webhooks?appId=A1"),
            token,
            &webhook,
            201,
        )
        .await?;
    }
    Ok(())
}

/// An event POST that intake took.
pub(crate) struct Published {
    /// How many times it was answered 429 first.
    pub(crate) refused: u64,
    /// When the accepted POST was sent.
    pub(crate) sent: Instant,
    /// When its 202 arrived.
    pub(crate) answered: Instant,
}

/// POSTs an event until intake takes it: a 429 (backpressure) is waited out for its
/// `Retry-After` and sent again, as a publisher should.
pub(crate) async fn publish(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<Published, BenchError> {
    let mut refused = 0;
    loop {
        let sent = Instant::now();
        let response = send_json(client, url, token, body).await?;
        match response.status().as_u16() {
            202 => {
                return Ok(Published {
                    refused,
                    sent,
                    answered: Instant::now(),
                })
            }
            429 => {
                refused += 1;
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            status => {
                let text = response.text().await.unwrap_or_default();
                return Err(BenchError::Run(format!("POST {url}: {status} {text}")));
            }
        }
    }
}

/// Latencies of events `seqs` × every webhook, from each event's POST to its arrival.
fn pair_latencies(
    receiver: &Receiver,
    posted: &[(usize, Instant)],
    webhooks: usize,
) -> (Vec<Duration>, Option<Instant>) {
    let mut latencies = Vec::with_capacity(posted.len() * webhooks);
    let mut last = None;
    for &(seq, at) in posted {
        for w in 0..webhooks {
            if let Some(arrived) = receiver.arrival(seq, w) {
                latencies.push(arrived.saturating_duration_since(at));
                last = last.max(Some(arrived));
            }
        }
    }
    (latencies, last)
}

/// How long the pipeline may go without a delivery before the run is called stalled.
const STALL: Duration = Duration::from_secs(60);

async fn run_pipeline(
    exe: &Path,
    options: &ThroughputOptions,
    progress: Progress,
) -> Result<(Side, Option<OfferedLoad>, Option<u64>), BenchError> {
    let (w, e) = (options.webhooks, options.events);
    let receiver = Receiver::start(e + options.rate_events, w)
        .await
        .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
    let scratch = Scratch::new()?;
    if options.expired_rows > 0 {
        write_expired(&scratch.0.join("bench.db"), options.expired_rows, progress).await?;
    }
    if options.backfill_events > 0 {
        write_history(
            &scratch.0.join("bench.db"),
            options.backfill_events,
            progress,
        )
        .await?;
    }
    let (serve, base, token) = start_serve(exe, &scratch, options.deliver_workers, &[]).await?;
    let pid = serve.pid()?;
    let client = reqwest::Client::new();
    subscribe(&client, &base, &token, &receiver.url(), "bench", w).await?;
    // A backfill of the history to one more webhook, running beside the live runs.
    let backfill = if options.backfill_events > 0 {
        let history = Receiver::start(0, 1)
            .await
            .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
        let created = send_json(
            &client,
            &format!("{base}/v1/webhooks?appId=A1"),
            &token,
            &serde_json::json!({"name": "backfill", "url": format!("{}/b", history.url()), "eventTypes": [HISTORY_EVENT_TYPE]}),
        )
        .await?
        .json::<serde_json::Value>()
        .await
        .map_err(|e| BenchError::Run(format!("create the backfill webhook: {e}")))?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| BenchError::Run(format!("create the backfill webhook: {created}")))?;
        let since = hookline_core::timestamp::rfc3339(
            time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        post(
            &client,
            &format!("{base}/v1/webhooks/{id}/backfill"),
            &token,
            &serde_json::json!({ "since": since }),
            202,
        )
        .await?;
        Some(history)
    } else {
        None
    };
    let pad = pad_for(options.body_bytes);
    let events_url = format!("{base}/v1/events");

    // Throughput: every event as fast as intake takes it.
    let before = read_process(&pid).unwrap_or_default();
    let started = Instant::now();
    let bar = progress.bar(e as u64, "pipeline: events posted");
    let posted: Vec<Result<(usize, Instant, u64), BenchError>> = stream::iter(0..e)
        .map(|seq| {
            let (client, url, token, bar) = (&client, &events_url, &token, &bar);
            async move {
                let at = Instant::now();
                let published = publish(client, url, token, &intake_body(seq, pad)).await?;
                bar.inc(1);
                Ok((seq, at, published.refused))
            }
        })
        .buffer_unordered(options.post_concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let posted = posted.into_iter().collect::<Result<Vec<_>, _>>()?;
    let refused = posted.iter().map(|p| p.2).sum();
    let posted: Vec<(usize, Instant)> = posted.into_iter().map(|(s, at, _)| (s, at)).collect();
    let bar = progress.bar((w * e) as u64, "pipeline: delivered");
    receiver
        .wait_for((w * e) as u64, STALL, &bar)
        .await
        .map_err(BenchError::Run)?;
    bar.finish_and_clear();
    let after = read_process(&pid).unwrap_or_default();
    let (latencies, last) = pair_latencies(&receiver, &posted, w);
    let elapsed = last.map_or(started.elapsed(), |l| l.saturating_duration_since(started));
    let pipeline = Side {
        deliveries: latencies.len() as u64,
        deliveries_per_s: latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        latency: Latency::of(latencies),
        process: ProcessReading {
            cpu_s: after.cpu_s - before.cpu_s,
            peak_rss_mib: after.peak_rss_mib,
            rss_mib: after.rss_mib,
        },
        refused,
    };

    // Latency: a steady offered load, each event POSTed on its schedule whatever the last did.
    let offered = if options.rate_events == 0 || options.rate == 0 {
        None
    } else {
        let client = Arc::new(client);
        let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate));
        let cpu_before = read_process(&pid).unwrap_or_default().cpu_s;
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(options.rate_events);
        let bar = progress.bar(options.rate_events as u64, "offered load: events posted");
        for i in 0..options.rate_events {
            bar.inc(1);
            let due = started + interval.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let (client, url, token) = (client.clone(), events_url.clone(), token.clone());
            let seq = e + i;
            tasks.push(tokio::spawn(async move {
                let at = Instant::now();
                let published = publish(&client, &url, &token, &intake_body(seq, pad)).await?;
                Ok::<_, BenchError>((seq, at, published))
            }));
        }
        let mut posted = Vec::with_capacity(tasks.len());
        let mut accepted = Vec::with_capacity(tasks.len());
        let mut answered = Vec::with_capacity(tasks.len());
        let mut refused = 0;
        for task in tasks {
            let (seq, at, p) = task.await.map_err(|e| BenchError::Run(e.to_string()))??;
            refused += p.refused;
            posted.push((seq, at));
            accepted.push((seq, p.sent));
            answered.push((seq, p.answered));
        }
        bar.finish_and_clear();
        let bar = progress.bar(0, "offered load: delivered");
        receiver
            .wait_for((w * (e + options.rate_events)) as u64, STALL, &bar)
            .await
            .map_err(BenchError::Run)?;
        bar.finish_and_clear();
        let cpu_s = read_process(&pid).unwrap_or_default().cpu_s - cpu_before;
        let (latencies, last) = pair_latencies(&receiver, &posted, w);
        let elapsed = last.map_or(started.elapsed(), |l| l.saturating_duration_since(started));
        Some(OfferedLoad {
            rate: options.rate,
            events: options.rate_events,
            deliveries_per_s: latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            latency: Latency::of(latencies),
            refused,
            accepted_latency: Latency::of(pair_latencies(&receiver, &accepted, w).0),
            queued_latency: Latency::of(pair_latencies(&receiver, &answered, w).0),
            cpu_s,
            cpu_per_delivery_ms: cpu_s * 1000.0 / (w * options.rate_events).max(1) as f64,
        })
    };
    let backfilled = backfill.map(|history| history.posts());
    drop(serve);
    Ok((pipeline, offered, backfilled))
}

/// The event type of the backfilled history (the live runs post [`super::BENCH_EVENT_TYPE`]).
const HISTORY_EVENT_TYPE: &str = "booking.created";

/// Logs `n` events of App A1 (unexpired, [`HISTORY_EVENT_TYPE`]) in the store at `path`
/// before `serve` opens it: the history a backfill sends.
async fn write_history(path: &Path, n: usize, progress: Progress) -> Result<(), BenchError> {
    use hookline_core::event::Event;
    use hookline_core::ports::EventLog as _;
    let db = hookline_core::adapters::sqlite::Database::open(path)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
    let now = time::OffsetDateTime::now_utc();
    let rules = hookline_core::event::IntakeRules {
        namespace: &hookline_core::urn::Namespace::default(),
        catalog: hookline_core::event_type::Catalog::builtin(),
    };
    let bar = progress.bar(n as u64, "history");
    let mut written = 0;
    while written < n {
        let batch = (n - written).min(1_000);
        let mut events = Vec::with_capacity(batch);
        for i in 0..batch {
            let body = serde_json::json!({"type": HISTORY_EVENT_TYPE, "urn": format!("urn:allthings:app:A1:booking:B{}", written + i), "data": {"seq": written + i}});
            events.push(
                Event::from_intake(body.to_string().as_bytes(), rules, now)
                    .map_err(|e| BenchError::Setup(e.to_string()))?,
            );
        }
        for claimed in futures_util::future::join_all(
            events
                .iter()
                .map(|e| db.claim(e, now + time::Duration::days(1), Duration::ZERO)),
        )
        .await
        {
            claimed.map_err(|e| BenchError::Setup(e.to_string()))?;
        }
        written += batch;
        bar.set_position(written as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The report as a table for people.
pub fn render(report: &ThroughputReport) -> String {
    let o = &report.options;
    let row = |name: &str, s: &Side| {
        format!(
            "{name:<9} {:>9} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1}\n",
            s.deliveries,
            s.deliveries_per_s,
            s.latency.p50_ms,
            s.latency.p95_ms,
            s.latency.p99_ms,
            s.process.cpu_s,
            s.process.peak_rss_mib
        )
    };
    let mut out = format!(
        "hookline bench: {} webhooks x {} events, {} B bodies, {} in flight\n\n",
        o.webhooks, o.events, o.body_bytes, report.concurrency
    );
    out.push_str("run       delivered  deliveries/s  p50 ms   p95 ms   p99 ms   CPU s  peak MiB\n");
    out.push_str(&row("floor", &report.floor));
    out.push_str(&row("pipeline", &report.pipeline));
    out.push_str(&format!(
        "\npipeline / floor: {:.3} ({:.1}% of the floor's deliveries/s)\n",
        report.ratio,
        report.ratio * 100.0
    ));
    out.push_str(
        "floor latency: send -> answer; pipeline latency: event POSTed (first try) -> delivery received\n",
    );
    if report.pipeline.refused > 0 {
        out.push_str(&format!(
            "intake pushed back: {} event POSTs answered 429 and sent again after Retry-After\n",
            report.pipeline.refused
        ));
    }
    if let Some(l) = &report.offered_load {
        out.push_str(&format!(
            "\noffered load {} events/s x {} events: {:.0} deliveries/s, intake -> received p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} POSTs answered 429\n",
            l.rate, l.events, l.deliveries_per_s, l.latency.p50_ms, l.latency.p95_ms, l.latency.p99_ms, l.latency.max_ms, l.refused
        ));
        out.push_str(&format!(
            "  serve's CPU: {:.2} s, {:.3} ms per delivery\n",
            l.cpu_s, l.cpu_per_delivery_ms
        ));
        if l.refused > 0 {
            out.push_str(&format!(
                "  from the accepted POST (without the publisher's waits after 429s): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
                l.accepted_latency.p50_ms, l.accepted_latency.p95_ms, l.accepted_latency.p99_ms, l.accepted_latency.max_ms
            ));
        }
        out.push_str(&format!(
            "  from the 202 (accepted work waiting to be delivered): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            l.queued_latency.p50_ms, l.queued_latency.p95_ms, l.queued_latency.p99_ms, l.queued_latency.max_ms
        ));
    }
    out
}

/// Writes `n` expired events and `n` expired attempts into the store at `path` (before `serve`
/// opens it), for its retention sweeper to delete during the runs.
async fn write_expired(path: &Path, n: usize, progress: Progress) -> Result<(), BenchError> {
    use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
    use hookline_core::event::{Event, EventId};
    use hookline_core::ports::{AttemptLog as _, EventLog as _};
    let db = hookline_core::adapters::sqlite::Database::open(path)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
    let expired = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let webhook = hookline_core::webhook::WebhookId::generate();
    let rules = hookline_core::event::IntakeRules {
        namespace: &hookline_core::urn::Namespace::default(),
        catalog: hookline_core::event_type::Catalog::builtin(),
    };
    let bar = progress.bar(n as u64, "expired rows");
    let mut written = 0;
    while written < n {
        let batch = (n - written).min(1_000);
        let mut attempts = Vec::with_capacity(batch);
        let mut events = Vec::with_capacity(batch);
        for i in 0..batch {
            let body = serde_json::json!({"type": super::BENCH_EVENT_TYPE, "urn": format!("urn:allthings:app:OLD:x:{}", written + i), "data": {}});
            let event = Event::from_intake(body.to_string().as_bytes(), rules, expired)
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            events.push(event.clone());
            attempts.push(Attempt {
                attempt_id: format!("{:026}", written + i),
                webhook_id: webhook.clone(),
                delivery_id: DeliveryId::for_pair(&event.id, &webhook),
                event_id: EventId::clone(&event.id),
                app_id: None,
                event_type: None,
                attempt: 1,
                at: expired,
                status: AttemptStatus::Delivered,
                response_status: Some(200),
                error: None,
                latency_ms: 1,
                response_excerpt: String::new(),
                next_retry_at: None,
                backfill: false,
            });
        }
        // Concurrent claims share commits (the store's group commit).
        for claimed in futures_util::future::join_all(
            events.iter().map(|e| db.claim(e, expired, Duration::ZERO)),
        )
        .await
        {
            claimed.map_err(|e| BenchError::Setup(e.to_string()))?;
        }
        db.record_many(&attempts, expired)
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        written += batch;
        bar.set_position(written as u64);
    }
    bar.finish_and_clear();
    Ok(())
}
