//! The floor: what the deliverer's HTTP client does alone. The same `ReqwestSender` and
//! `signed_request` the deliverer uses, POSTing signed bodies of the pipeline's size with the
//! pipeline's concurrency straight to the receiver. It runs as its own process
//! (`hookline-bench floor`) so its CPU and memory are read apart from the receiver's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::ports::HttpSender;
use hookline_core::signing::Secret;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_core::webhook::{NewWebhook, Webhook, WebhookRules};
use hookline_deliver::signed_request;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::stats::{read_process, Latency, ProcessReading};
use super::{intake_body, pad_for, BenchError};

/// What the floor process is asked to do.
#[derive(Debug, Clone)]
pub struct FloorOptions {
    /// The receiver's base URL.
    pub url: String,
    /// Requests to send.
    pub count: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Size of each delivery body, in bytes.
    pub body_bytes: usize,
}

/// What the floor process measured, printed as JSON for the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorReport {
    /// Requests answered 2xx.
    pub delivered: u64,
    /// Wall time of the whole run, in seconds.
    pub elapsed_s: f64,
    /// Send → answer, per request.
    pub latency: Latency,
    /// CPU and peak memory of the floor process over the run.
    pub process: ProcessReading,
}

/// Sends `options.count` signed POSTs and measures them.
pub async fn run(options: &FloorOptions) -> Result<FloorReport, BenchError> {
    let namespace = Namespace::default();
    let targets = TargetPolicy {
        allow_private: true,
    };
    let rules = WebhookRules {
        namespace: &namespace,
        catalog: Catalog::builtin(),
        allow_http: true,
        targets,
        ordered: true,
        destinations: None,
    };
    let spec = NewWebhook {
        name: "floor".into(),
        url: format!("{}/w/0", options.url),
        event_types: vec!["ticket.created".into()],
        urns: Some(vec!["urn:allthings:app:A1:*".into()]),
        custom_headers: None,
        enabled: Some(true),
        secret: None,
        ..Default::default()
    }
    .validate(&rules, None)
    .map_err(|e| BenchError::Setup(format!("floor webhook: {e}")))?;
    let secret = Secret::generate().map_err(|e| BenchError::Setup(e.to_string()))?;
    let keys = Arc::new(
        hookline_core::sealed::Keyring::generate().map_err(|e| BenchError::Setup(e.to_string()))?,
    );
    let mut webhook = Webhook::new(spec, &secret, "bench", OffsetDateTime::now_utc());
    // Sealed as stored, so the floor opens the secret per request as the deliverer does.
    webhook
        .seal(&keys)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let webhook = Arc::new(webhook);
    let sender = Arc::new(
        ReqwestSender::new(targets, "Hookline/bench")
            .map_err(|e| BenchError::Setup(e.to_string()))?,
    );
    let intake = IntakeRules {
        namespace: &namespace,
        catalog: Catalog::builtin(),
    };
    // One event per request, parsed as intake parses it, so bodies match the pipeline's;
    // built as sent, so the floor holds no more in memory than the requests in flight.
    let pad = pad_for(options.body_bytes);
    let before = read_process("self").unwrap_or_default();
    let started = Instant::now();
    let results: Vec<Result<Duration, String>> = stream::iter(0..options.count)
        .map(|seq| {
            let (webhook, sender, keys) = (webhook.clone(), sender.clone(), keys.clone());
            async move {
                let now = OffsetDateTime::now_utc();
                let body = serde_json::to_vec(&intake_body(seq, pad)).map_err(|e| e.to_string())?;
                let event = Event::from_intake(&body, intake, now).map_err(|e| e.to_string())?;
                let request = signed_request(
                    &webhook,
                    &keys,
                    &event,
                    now,
                    "Hookline/bench",
                    Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
                let response = sender.send(request).await.map_err(|e| e.to_string())?;
                if (200..300).contains(&response.status) {
                    Ok(response.latency)
                } else {
                    Err(format!("answered {}", response.status))
                }
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let after = read_process("self").unwrap_or_default();
    let mut latencies = Vec::with_capacity(results.len());
    for result in results {
        latencies.push(result.map_err(|e| BenchError::Run(format!("floor request: {e}")))?);
    }
    Ok(FloorReport {
        delivered: latencies.len() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        latency: Latency::of(latencies),
        process: ProcessReading {
            cpu_s: after.cpu_s - before.cpu_s,
            peak_rss_mib: after.peak_rss_mib,
            rss_mib: after.rss_mib,
        },
    })
}
