//! `hookline bench`: Hookline measured against what it is built on, side by side in one run.
//!
//! - [`throughput`]: the floor (the deliverer's HTTP client alone, straight to a loopback
//!   receiver) and the pipeline (`hookline serve`: intake → fan-out → delivery), and their ratio;
//! - [`coldstart`]: the Lambda binaries' init and first invocation under a Runtime API
//!   emulator, against an empty `lambda_runtime` function;
//! - [`cost`]: AWS requests per delivery on the moto path, priced per million deliveries;
//! - [`soak`]: a long steady load on `hookline serve`, sampled: RSS, CPU, queues, p99;
//! - [`idle`]: `hookline serve`'s CPU with nothing to do, and how fast it wakes.

pub mod coldstart;
pub mod cost;
pub mod floor;
pub mod idle;
pub mod receiver;
pub mod soak;
pub mod stats;
pub mod throughput;

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::urn::Namespace;
use http_body_util::Full;

/// Why a benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something it needs could not be set up (a process, a port, a table).
    #[error("setup: {0}")]
    Setup(String),
    /// The run itself failed (a request was refused, deliveries stalled).
    #[error("run: {0}")]
    Run(String),
}

/// A suffix no earlier run used: nanoseconds since the Unix epoch.
pub fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A request as the benchmark's loopback servers get it.
pub type IncomingRequest = http::Request<hyper::body::Incoming>;
/// A response of the benchmark's loopback servers.
pub type FullResponse = http::Response<Full<Bytes>>;

/// Serves HTTP/1.1 with `handle` on a free loopback port until the returned task is aborted.
pub async fn serve_loopback<F, Fut>(
    handle: F,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)>
where
    F: Fn(IncomingRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = FullResponse> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            let service = hyper::service::service_fn(move |req: IncomingRequest| {
                let answer = handle(req);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, server))
}

/// The event type and App every benchmark event has.
pub const BENCH_EVENT_TYPE: &str = "ticket.created";

/// The intake body of benchmark event `seq`, its `data` padded with `pad` bytes.
pub fn intake_body(seq: usize, pad: usize) -> serde_json::Value {
    serde_json::json!({
        "type": BENCH_EVENT_TYPE,
        "urn": format!("urn:allthings:app:A1:ticket:CAT7:T{seq}"),
        "data": {"seq": seq, "pad": "x".repeat(pad)},
    })
}

/// The padding that makes a delivered body `body_bytes` long (for a seq of 5 digits).
pub fn pad_for(body_bytes: usize) -> usize {
    let unpadded = serde_json::to_vec(&intake_body(10_000, 0))
        .ok()
        .and_then(|body| {
            let rules = IntakeRules {
                namespace: &Namespace::default(),
                catalog: Catalog::builtin(),
            };
            Event::from_intake(&body, rules, time::OffsetDateTime::now_utc()).ok()
        })
        .and_then(|event| event.delivery_body().ok())
        .map_or(0, |body| body.len());
    body_bytes.saturating_sub(unpadded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_deliveries_are_the_asked_size() {
        let body = serde_json::to_vec(&intake_body(12_345, pad_for(1024))).expect("json");
        let rules = IntakeRules {
            namespace: &Namespace::default(),
            catalog: Catalog::builtin(),
        };
        let event =
            Event::from_intake(&body, rules, time::OffsetDateTime::now_utc()).expect("valid");
        let delivered = event.delivery_body().expect("body").len();
        // The timestamp's fraction may drop trailing zeros; a few bytes either way.
        assert!((1014..=1034).contains(&delivered), "{delivered} bytes");
    }
}
