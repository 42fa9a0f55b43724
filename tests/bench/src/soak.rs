//! The soak run: `hookline serve` under a steady offered load for a long time, with ten
//! webhooks of which some are slow, one flaky and one always failing, sampled every interval
//! (RSS, CPU, queue depths, delivery p99 of the window). It first measures saturation with the
//! same webhooks for a short while and offers half of it. The verdict, over the windows after
//! the warm-up (the first fifth): RSS flat within ±10 % of its median; p99 stable — the median
//! window p99 of the last third no more than 1.5× that of the first third (no drift), and at
//! most 5 % of windows above 3× the median (spikes, e.g. from other work on the machine, are
//! counted, not hidden); and nothing lost (every event reached every webhook that answers 2xx
//! at all).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;

use crate::receiver::{Behaviour, Receiver};
use crate::stats::{read_process, Latency};
use crate::throughput::{publish, start_serve, subscribe, Scratch};
use crate::{intake_body, pad_for, BenchError};

/// What a soak run does.
#[derive(Debug, Clone, Serialize)]
pub struct SoakOptions {
    /// How long the offered load runs.
    pub minutes: f64,
    /// Offered events per second; `None`: half the saturation measured first.
    pub rate: Option<u32>,
    /// Time between samples.
    pub sample_every: Duration,
    /// Delivered body size, in bytes.
    pub body_bytes: usize,
    /// Seconds of the saturation measurement.
    pub probe_secs: u64,
}

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    /// Seconds since the offered load began.
    pub at_s: f64,
    /// `serve`'s resident set, MiB.
    pub rss_mib: f64,
    /// `serve`'s CPU over the window, % of one core.
    pub cpu_pct: f64,
    /// Messages in the `deliveries` queue (waiting, in flight or delayed for a retry).
    pub deliveries_queue: u64,
    /// Messages in the `events` queue.
    pub events_queue: u64,
    /// Messages in the deliveries DLQ.
    pub dlq: u64,
    /// Deliveries (first 2xx of a pair) in the window, per second.
    pub delivered_per_s: f64,
    /// p99 of the window's deliveries to endpoints that answer at once (healthy and slow),
    /// from the event's due time to its arrival, ms.
    pub p99_ms: f64,
}

/// The run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// What was run.
    pub options: SoakOptions,
    /// Measured saturation with these webhooks, events per second.
    pub saturation_eps: f64,
    /// Offered events per second.
    pub rate: u32,
    /// Events offered.
    pub events: usize,
    /// The samples.
    pub samples: Vec<SoakSample>,
    /// RSS after warm-up (the first fifth): lowest, median, highest, MiB.
    pub rss_after_warmup: (f64, f64, f64),
    /// Window p99s after warm-up: median and highest, ms.
    pub p99_after_warmup: (f64, f64),
    /// Median window p99 of the first and of the last third after warm-up, ms.
    pub p99_thirds: (f64, f64),
    /// Windows after warm-up whose p99 is above 3× the median, and how many windows there are.
    pub p99_spikes: (usize, usize),
    /// Pairs to endpoints that answer 2xx that never arrived.
    pub lost: u64,
    /// Whole-run delivery latency to the endpoints that answer at once.
    pub latency: Latency,
    /// Held or not, and why.
    pub verdict: String,
    /// Whether every criterion held.
    pub passed: bool,
}

/// The ten endpoints: six healthy, two slow, one flaky, one failing.
pub fn behaviours() -> Vec<Behaviour> {
    let mut b = vec![Behaviour::Healthy; 6];
    b.push(Behaviour::Slow(Duration::from_millis(100)));
    b.push(Behaviour::Slow(Duration::from_millis(100)));
    b.push(Behaviour::Flaky);
    b.push(Behaviour::Failing);
    b
}

/// Queue depths read from the store file (a reader beside `serve`'s writer, WAL mode).
fn queue_depths(db: &Path) -> (u64, u64, u64) {
    let read = || -> rusqlite::Result<(u64, u64, u64)> {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let count = |q: &str| -> rusqlite::Result<u64> {
            c.query_row(
                "SELECT COUNT(*) FROM queue_messages WHERE queue = ?1",
                [q],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
        };
        Ok((
            count("deliveries")?,
            count("events")?,
            count("deliveries-dlq")?,
        ))
    };
    read().unwrap_or_default()
}

/// Webhooks whose endpoint answers 2xx at least some of the time.
fn delivering(behaviours: &[Behaviour]) -> Vec<usize> {
    (0..behaviours.len())
        .filter(|i| behaviours[*i] != Behaviour::Failing)
        .collect()
}

/// Runs the soak against `hookline` (the binary), reporting progress on stderr.
pub async fn run(hookline: &Path, options: &SoakOptions) -> Result<SoakReport, BenchError> {
    let behaviours = behaviours();
    let width = behaviours.len();
    let ok = delivering(&behaviours);
    // Answered at the first attempt: what the window p99s measure (a flaky endpoint's
    // deliveries wait for the retry schedule, not for Hookline).
    let first_time: Vec<usize> = (0..width)
        .filter(|i| matches!(behaviours[*i], Behaviour::Healthy | Behaviour::Slow(_)))
        .collect();
    let probe_room = 200_000;
    // Room for the pairs the run can offer: a given rate, else up to 1 000 events/s (half of
    // the saturation measured on this machine kind is ~700).
    let max_rate = f64::from(options.rate.unwrap_or(1_000));
    let room = probe_room + (options.minutes * 60.0 * max_rate) as usize + 1;
    let receiver = Receiver::start_with(room, width, behaviours.clone())
        .await
        .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
    let scratch = Scratch::new()?;
    let db = scratch.0.join("bench.db");
    // Retries a few seconds apart, and a failing endpoint disabled after 3 minutes of
    // failures, as an operator would set them: the failing webhook's deliveries reach the DLQ
    // within a minute, and the webhook is switched off within the warm-up.
    let (serve, base, token) = start_serve(
        hookline,
        &scratch,
        hookline::DELIVER_WORKERS,
        &[
            ("HOOKLINE_RETRY_SCHEDULE_MS", "2000,4000,8000,16000,32000"),
            ("HOOKLINE_DISABLE_AFTER", "3m"),
            ("HOOKLINE_DISABLE_MIN_FAILURES", "10"),
        ],
    )
    .await?;
    let pid = serve.pid()?;
    let client = reqwest::Client::new();
    subscribe(&client, &base, &token, &receiver.url(), "soak", width).await?;
    let pad = pad_for(options.body_bytes);
    let events_url = format!("{base}/v1/events");

    // Saturation: events as fast as intake takes them (16 posters); deliveries per second
    // over the second half of the probe, per webhook that answers 2xx.
    let probe = Duration::from_secs(options.probe_secs.max(4));
    let probe_started = Instant::now();
    let mut seq = 0usize;
    let mut mid = None;
    while probe_started.elapsed() < probe && seq < probe_room {
        let batch: Vec<usize> = (seq..(seq + 64).min(probe_room)).collect();
        seq += batch.len();
        let results: Vec<Result<_, BenchError>> = stream::iter(batch)
            .map(|s| {
                let (client, url, token) = (&client, &events_url, &token);
                async move { publish(client, url, token, &intake_body(s, pad)).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
        if mid.is_none() && probe_started.elapsed() >= probe / 2 {
            mid = Some((Instant::now(), receiver.distinct()));
        }
    }
    let (mid_at, mid_count) = mid.unwrap_or((probe_started, 0));
    let probed = (receiver.distinct() - mid_count) as f64 / mid_at.elapsed().as_secs_f64();
    let saturation_eps = probed / ok.len().max(1) as f64;
    let rate = options
        .rate
        .unwrap_or_else(|| ((saturation_eps / 2.0).round() as u32).clamp(1, max_rate as u32));
    let probe_events = seq;
    eprintln!(
        "soak: saturation {saturation_eps:.0} events/s ({probed:.0} deliveries/s to {} webhooks); offering {rate}/s for {} min",
        ok.len(),
        options.minutes
    );
    // Let the probe's backlog drain before time zero.
    let drain = Instant::now();
    while receiver.distinct() < (probe_events * ok.len()) as u64
        && drain.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The offered load: each event posted on its schedule, whatever the last did.
    let total = (options.minutes * 60.0 * f64::from(rate)) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let due = move |i: usize| started + interval.mul_f64(i as f64);
    let client = Arc::new(client);
    let poster = {
        let (client, url, token) = (client.clone(), events_url.clone(), token.clone());
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..total {
                tokio::time::sleep_until(due(i).into()).await;
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                tasks.spawn(async move {
                    publish(&client, &url, &token, &intake_body(probe_events + i, pad))
                        .await
                        .map(|_| ())
                });
                while let Some(done) = tasks.try_join_next() {
                    done.map_err(|e| BenchError::Run(e.to_string()))??;
                }
            }
            while let Some(done) = tasks.join_next().await {
                done.map_err(|e| BenchError::Run(e.to_string()))??;
            }
            Ok::<(), BenchError>(())
        })
    };

    let mut samples = Vec::new();
    let mut last_cpu = read_process(&pid).unwrap_or_default().cpu_s;
    let mut last_at = Instant::now();
    let window_lat = |from: Instant, to: Instant, upto: usize, low: usize| -> Vec<Duration> {
        let mut out = Vec::new();
        for i in low..upto {
            for &w in &first_time {
                if let Some(at) = receiver.arrival(probe_events + i, w) {
                    if at > from && at <= to {
                        out.push(at.saturating_duration_since(due(i)));
                    }
                }
            }
        }
        out
    };
    let run_for = Duration::from_secs_f64(options.minutes * 60.0);
    while started.elapsed() < run_for {
        tokio::time::sleep(
            options
                .sample_every
                .min(run_for.saturating_sub(started.elapsed())),
        )
        .await;
        let now = Instant::now();
        let reading = read_process(&pid).unwrap_or_default();
        let posted = ((now - started).as_secs_f64() * f64::from(rate)) as usize;
        let posted = posted.min(total);
        // Pairs of the last two minutes (a flaky endpoint's retry comes seconds later).
        let low = posted.saturating_sub(rate as usize * 120);
        let lat = window_lat(last_at, now, posted, low);
        let (deliveries_queue, events_queue, dlq) = queue_depths(&db);
        let window = (now - last_at).as_secs_f64().max(f64::EPSILON);
        let sample = SoakSample {
            at_s: (now - started).as_secs_f64(),
            rss_mib: reading.rss_mib,
            cpu_pct: (reading.cpu_s - last_cpu) / window * 100.0,
            deliveries_queue,
            events_queue,
            dlq,
            delivered_per_s: lat.len() as f64 / window,
            p99_ms: Latency::of(lat).p99_ms,
        };
        eprintln!(
            "soak: {:>6.0} s  rss {:>6.1} MiB  cpu {:>5.1}%  deliveries queue {:>6}  events queue {:>4}  dlq {:>6}  {:>7.0}/s  p99 {:>7.1} ms",
            sample.at_s,
            sample.rss_mib,
            sample.cpu_pct,
            sample.deliveries_queue,
            sample.events_queue,
            sample.dlq,
            sample.delivered_per_s,
            sample.p99_ms
        );
        samples.push(sample);
        (last_cpu, last_at) = (reading.cpu_s, now);
    }
    poster.await.map_err(|e| BenchError::Run(e.to_string()))??;

    // Nothing lost: every pair to an endpoint that answers 2xx arrives (a flaky one's retry
    // after the first backoff step).
    let drain = Instant::now();
    let target = ((probe_events + total) * ok.len()) as u64;
    while receiver.distinct() < target && drain.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lost = target.saturating_sub(receiver.distinct());
    let mut all = Vec::with_capacity(total * ok.len());
    for i in 0..total {
        for &w in &first_time {
            if let Some(at) = receiver.arrival(probe_events + i, w) {
                all.push(at.saturating_duration_since(due(i)));
            }
        }
    }
    drop(serve);

    let warm = samples.len() / 5;
    let after: Vec<&SoakSample> = samples.iter().skip(warm).collect();
    let mut rss: Vec<f64> = after.iter().map(|s| s.rss_mib).collect();
    rss.sort_by(f64::total_cmp);
    let mut p99: Vec<f64> = after.iter().map(|s| s.p99_ms).collect();
    p99.sort_by(f64::total_cmp);
    let mid = |v: &[f64]| v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0);
    let rss_after_warmup = (
        rss.first().copied().unwrap_or(0.0),
        mid(&rss),
        rss.last().copied().unwrap_or(0.0),
    );
    let p99_after_warmup = (mid(&p99), p99.last().copied().unwrap_or(0.0));
    let rss_flat = rss_after_warmup.1 > 0.0
        && rss_after_warmup.0 >= rss_after_warmup.1 * 0.9
        && rss_after_warmup.2 <= rss_after_warmup.1 * 1.1;
    let in_order: Vec<f64> = after.iter().map(|s| s.p99_ms).collect();
    let third = (in_order.len() / 3).max(1);
    let median_of = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        mid(&v)
    };
    let p99_thirds = (
        median_of(&in_order[..third.min(in_order.len())]),
        median_of(&in_order[in_order.len().saturating_sub(third)..]),
    );
    let spikes = in_order
        .iter()
        .filter(|p| **p > (p99_after_warmup.0 * 3.0).max(50.0))
        .count();
    let p99_spikes = (spikes, in_order.len());
    let p99_stable = p99_thirds.1 <= (p99_thirds.0 * 1.5).max(50.0)
        && spikes as f64 <= in_order.len() as f64 * 0.05;
    let mut verdict = Vec::new();
    verdict.push(if rss_flat {
        format!(
            "RSS flat: {:.1}–{:.1} MiB around {:.1} after warm-up (within ±10 %)",
            rss_after_warmup.0, rss_after_warmup.2, rss_after_warmup.1
        )
    } else {
        format!(
            "RSS NOT flat: {:.1}–{:.1} MiB around {:.1} after warm-up (beyond ±10 %)",
            rss_after_warmup.0, rss_after_warmup.2, rss_after_warmup.1
        )
    });
    verdict.push(format!(
        "p99 {}: median window {:.1} ms (first third {:.1}, last third {:.1}), worst {:.1} ms, {} of {} windows above 3× the median",
        if p99_stable { "stable" } else { "NOT stable" },
        p99_after_warmup.0,
        p99_thirds.0,
        p99_thirds.1,
        p99_after_warmup.1,
        p99_spikes.0,
        p99_spikes.1
    ));
    verdict.push(if lost == 0 {
        "nothing lost".to_owned()
    } else {
        format!("{lost} deliveries LOST")
    });
    Ok(SoakReport {
        options: options.clone(),
        saturation_eps,
        rate,
        events: total,
        samples,
        rss_after_warmup,
        p99_after_warmup,
        p99_thirds,
        p99_spikes,
        lost,
        latency: Latency::of(all),
        passed: rss_flat && p99_stable && lost == 0,
        verdict: verdict.join("; "),
    })
}

/// The report as a table for people.
pub fn render(r: &SoakReport) -> String {
    let mut out = format!(
        "soak: {} min at {} events/s (half of the {:.0} events/s measured), 10 webhooks (6 healthy, 2 slow 100 ms, 1 flaky, 1 failing)\n\n",
        r.options.minutes, r.rate, r.saturation_eps
    );
    out.push_str(
        "    time   RSS MiB   CPU %   deliveries q   events q     DLQ   delivered/s   p99 ms\n",
    );
    for s in &r.samples {
        out.push_str(&format!(
            "{:>7.0}s  {:>8.1}  {:>6.1}  {:>13}  {:>9}  {:>6}  {:>12.0}  {:>7.1}\n",
            s.at_s,
            s.rss_mib,
            s.cpu_pct,
            s.deliveries_queue,
            s.events_queue,
            s.dlq,
            s.delivered_per_s,
            s.p99_ms
        ));
    }
    out.push_str(&format!(
        "\nwhole run: {} events, delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.events, r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms
    ));
    out.push_str(&format!(
        "verdict: {} — {}\n",
        if r.passed { "PASS" } else { "FAIL" },
        r.verdict
    ));
    out
}
