//! The loopback endpoint both runs deliver to: hyper, HTTP/1.1, 200 at once. It notes the
//! first arrival of each (event, webhook) pair by the event's `data.seq` and the webhook's
//! path `/w/{index}`, so the pipeline's intake → received latency can be computed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

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
        let tally = Arc::new(Tally {
            epoch: Instant::now(),
            width: width.max(1),
            first_arrival_ns: (0..events.saturating_mul(width))
                .map(|_| AtomicU64::new(0))
                .collect(),
            distinct: AtomicU64::new(0),
            posts: AtomicU64::new(0),
        });
        let served = tally.clone();
        let (addr, server) = super::serve_loopback(move |req| {
            let tally = served.clone();
            async move {
                let path = req.uri().path().to_owned();
                if let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) {
                    tally.note(&path, &body);
                }
                http::Response::new(Full::new(Bytes::new()))
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
