//! `GET /metrics` of `hookline serve`: the metrics of [`hookline_core::telemetry`] in the
//! Prometheus text format (`metrics-exporter-prometheus`), behind a bearer token holding
//! `read-metrics:*`. Each scrape first sets the queue gauges from the embedded queues.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hookline_api::auth::Authenticated;
use hookline_api::error::ServiceError;
use hookline_api::problem::Problem;
use hookline_core::adapters::sqlite::{Queues, SqliteQueue};
use hookline_core::auth::Action;
use hookline_core::telemetry;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// How often histograms are drained when nobody scrapes (bounds their memory).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first call; `None` when another recorder
/// was installed first (the metrics then go there, and `/metrics` answers 503).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &telemetry::BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            let recorder = match built {
                Ok(r) => r,
                Err(e) => {
                    telemetry::metrics_error("exporter", &e);
                    return None;
                }
            };
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                telemetry::metrics_error("exporter", &e);
                return None;
            }
            telemetry::describe();
            Some(handle)
        })
        .clone()
}

/// What a scrape reads.
#[derive(Clone)]
pub struct Scrape {
    handle: Option<PrometheusHandle>,
    queues: Queues,
}

impl Scrape {
    /// Scrapes of the process's recorder and these queues.
    pub fn new(queues: Queues) -> Self {
        Self {
            handle: handle(),
            queues,
        }
    }

    /// Drains histograms now and then so an unscraped process does not grow.
    pub async fn upkeep(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(handle) = self.handle else { return };
        while !*stop.borrow() {
            tokio::select! {
                () = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
                _ = stop.changed() => {}
            }
        }
    }

    /// Sets the queue gauges (depth, oldest message's age, DLQ depth).
    async fn queue_gauges(&self) {
        let queues: [(&'static str, bool, &SqliteQueue); 4] = [
            ("events", false, &self.queues.events),
            ("deliveries", false, &self.queues.deliveries),
            ("events-dlq", true, &self.queues.events_dlq),
            ("deliveries-dlq", true, &self.queues.deliveries_dlq),
        ];
        let now = time::OffsetDateTime::now_utc();
        let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        for (name, dlq, queue) in queues {
            match queue.depth_and_oldest().await {
                Ok((depth, oldest)) => {
                    let age = oldest.map_or(Duration::ZERO, |sent| {
                        Duration::from_millis(u64::try_from(now_ms - sent).unwrap_or(0))
                    });
                    telemetry::queue_state(name, dlq, depth as u64, age);
                }
                Err(e) => telemetry::metrics_error("queue_gauges", &e),
            }
        }
    }
}

/// `GET /metrics`: 401 without a token, 403 without `read-metrics:*`.
pub async fn scrape(
    Authenticated(principal): Authenticated,
    State(scrape): State<Arc<Scrape>>,
) -> Response {
    if !principal.may(Action::ReadMetrics, "*") {
        return Problem::from(ServiceError::Forbidden(
            "reading metrics needs read-metrics:* (hookline token --app '*' --permission read-metrics)"
                .into(),
        ))
        .into_response();
    }
    let Some(handle) = &scrape.handle else {
        return Problem::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics-unavailable",
            "Metrics unavailable",
            "another metrics recorder was installed in this process",
        )
        .into_response();
    };
    scrape.queue_gauges().await;
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// The `/metrics` route, for [`crate::Local::app`] to merge before its auth layer.
pub fn routes(state: Scrape) -> axum::Router {
    axum::Router::new()
        .route(PATH, axum::routing::get(scrape))
        .with_state(Arc::new(state))
}
