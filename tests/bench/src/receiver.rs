//! The loopback endpoint both runs deliver to: hyper, HTTP/1.1, 200 at once (or, per webhook,
//! slowly, every other time, or never: [`Behaviour`], for the soak run). It notes the first
//! 2xx arrival of each (event, webhook) pair by the event's `data.seq` and the webhook's path
//! `/w/{index}`, so the pipeline's intake → received latency can be computed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

/// How the endpoint of one webhook answers deliveries (endpoint checks, `HEAD`, always get
/// 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 at once.
    Healthy,
    /// 200 after this long.
    Slow(Duration),
    /// 500 to the first POST of each event, 200 to the next: each delivery is retried once.
    Flaky,
    /// 500 always: retried, then dead-lettered.
    Failing,
}

/// What the receiver counted.
struct Tally {
    /// Time zero of `first_arrival_ns`.
    epoch: Instant,
    /// Webhooks per event: pair index = seq × width + webhook index.
    width: usize,
    /// Nanoseconds after `epoch` + 1 of each pair's first arrival; 0 until it arrives.
    first_arrival_ns: Vec<AtomicU64>,
    /// Distinct pairs arrived.
    distinct: AtomicU64,
    /// Every POST, repeats and bodies without a `seq` included.
    posts: AtomicU64,
    /// POSTs answered 5xx.
    failed: AtomicU64,
}

/// A running loopback receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    tally: Arc<Tally>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct DeliveredBody {
    data: Option<DeliveredData>,
}

#[derive(Deserialize)]
struct DeliveredData {
    seq: Option<u64>,
}

impl Tally {
    fn note(&self, path: &str, body: &[u8]) {
        self.posts.fetch_add(1, Ordering::Relaxed);
        let webhook = path
            .strip_prefix("/w/")
            .and_then(|i| i.parse::<usize>().ok());
        let seq = serde_json::from_slice::<DeliveredBody>(body)
            .ok()
            .and_then(|b| b.data)
            .and_then(|d| d.seq);
        let (Some(webhook), Some(seq)) = (webhook, seq) else {
            return;
        };
        let Some(slot) = usize::try_from(seq)
            .ok()
            .and_then(|s| s.checked_mul(self.width))
            .and_then(|s| s.checked_add(webhook))
            .and_then(|i| self.first_arrival_ns.get(i))
        else {
            return;
        };
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        if slot
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.distinct.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Receiver {
    /// Starts on a free loopback port, with room for `events` × `width` pairs (0 to count only).
    pub async fn start(events: usize, width: usize) -> std::io::Result<Self> {
        Self::start_with(events, width, Vec::new()).await
    }

    /// [`Receiver::start`] with webhook `i` answering as `behaviours[i]` (healthy past the end).
    pub async fn start_with(
        events: usize,
        width: usize,
        behaviours: Vec<Behaviour>,
    ) -> std::io::Result<Self> {
        let flaky = behaviours.contains(&Behaviour::Flaky);
        let behaviours = Arc::new(behaviours);
        // Per event, whether a flaky endpoint has failed it once (bit per webhook index).
        let tried: Arc<Vec<AtomicU64>> = Arc::new(
            (0..if flaky { events } else { 0 })
                .map(|_| AtomicU64::new(0))
                .collect(),
        );
        let tally = Arc::new(Tally {
            epoch: Instant::now(),
            width: width.max(1),
            first_arrival_ns: (0..events.saturating_mul(width))
                .map(|_| AtomicU64::new(0))
                .collect(),
            distinct: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let served = tally.clone();
        let (addr, server) = super::serve_loopback(move |req| {
            let (tally, behaviours, tried) = (served.clone(), behaviours.clone(), tried.clone());
            async move {
                let path = req.uri().path().to_owned();
                let head = req.method() == http::Method::HEAD;
                let index = path
                    .strip_prefix("/w/")
                    .and_then(|i| i.parse::<usize>().ok());
                let behaviour = index
                    .and_then(|i| behaviours.get(i).copied())
                    .unwrap_or(Behaviour::Healthy);
                let fail = !head
                    && match behaviour {
                        Behaviour::Healthy => false,
                        Behaviour::Slow(d) => {
                            tokio::time::sleep(d).await;
                            false
                        }
                        Behaviour::Flaky => false,
                        Behaviour::Failing => true,
                    };
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                let fail = fail
                    || (!head && behaviour == Behaviour::Flaky && {
                        let seq = body.as_ref().ok().and_then(|b| {
                            serde_json::from_slice::<DeliveredBody>(b)
                                .ok()
                                .and_then(|d| d.data)
                                .and_then(|d| d.seq)
                        });
                        let bit = 1u64 << (index.unwrap_or(0) % 64);
                        seq.and_then(|s| usize::try_from(s).ok())
                            .and_then(|s| tried.get(s))
                            .is_some_and(|t| t.fetch_or(bit, Ordering::Relaxed) & bit == 0)
                    });
                if let Ok(body) = body {
                    if fail {
                        tally.posts.fetch_add(1, Ordering::Relaxed);
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.note(&path, &body);
                    }
                }
                let mut response = http::Response::new(Full::new(Bytes::new()));
                if fail {
                    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                response
            }
        })
        .await?;
        Ok(Self {
            addr,
            tally,
            server,
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POSTs received so far.
    pub fn posts(&self) -> u64 {
        self.tally.posts.load(Ordering::Relaxed)
    }

    /// POSTs answered 5xx so far.
    pub fn failed(&self) -> u64 {
        self.tally.failed.load(Ordering::Relaxed)
    }

    /// Distinct (event, webhook) pairs received so far.
    pub fn distinct(&self) -> u64 {
        self.tally.distinct.load(Ordering::Relaxed)
    }

    /// The instant pair (`seq`, `webhook`) first arrived, if it has.
    pub fn arrival(&self, seq: usize, webhook: usize) -> Option<Instant> {
        let ns = self
            .tally
            .first_arrival_ns
            .get(seq * self.tally.width + webhook)?
            .load(Ordering::Relaxed);
        (ns > 0).then(|| self.tally.epoch + Duration::from_nanos(ns - 1))
    }

    /// Waits until `target` distinct pairs arrived, showing them on `progress`; fails once
    /// `stall` passes without progress.
    pub async fn wait_for(
        &self,
        target: u64,
        stall: Duration,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), String> {
        let (mut last, mut since) = (self.distinct(), Instant::now());
        progress.set_length(target);
        while self.distinct() < target {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = self.distinct();
            progress.set_position(now);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > stall {
                return Err(format!(
                    "stalled: {now} of {target} deliveries received, none in the last {stall:?}"
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
