//! Fan-out: each event from the `events` queue becomes one delivery message per matching,
//! enabled webhook.
//!
//! Per message: parse and validate (garbage goes to `events-dlq` with the reason, once,
//! and never blocks its batch); claim the event id in the event log (a copy of an event whose
//! fan-out finished is dropped, one whose fan-out did not finish is fanned out again); read
//! the App's routes from the [`RouteCache`] (one version read per App and batch; the App's
//! route items only when a webhook of it changed); match them with a [`UrnIndex`] and the
//! event-type filters; send the delivery messages (each carries the webhook's version, and
//! the event itself when it is at most [`IngestSettings::embed_event_bytes`]); mark the event
//! fanned out. Delivery ids are deterministic per (event, webhook), so a repeated fan-out
//! repeats ids and loses nothing. On DynamoDB the claim is the event log's only write
//! ([`EventLog::claim_for_message`]): it names the queue message that took the event, so
//! that message's retry fans out again, any other message carrying the id is a duplicate,
//! and nothing is marked afterwards. Where the store holds the event log and the deliveries
//! together ([`FanOutCommit`], the embedded store), the routes are read first and the claim,
//! the messages and the mark are one commit; [`Ingest::fan_out`] is then also how `hookline
//! serve` fans out an event in the commit that takes it in.
//!
//! `grant.revoked` / `grant.restored` messages are the platform's word that a client lost or
//! regained a permission: they are applied ([`Lifecycle::apply_grant`]), never fanned out.
//! An operational event (`webhook.*`) is never sent to the webhook it is about.
#![warn(missing_docs)]

pub mod route_cache;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hookline_core::config::{Env, SettingError};
use hookline_core::delivery::{DeliveryId, DeliveryMessage, ReceivedMessage};
use hookline_core::event::{Event, EventError, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::grant::grant_message;
use hookline_core::job::JobChunk;
use hookline_core::jobs::Jobs;
use hookline_core::lifecycle::Lifecycle;
use hookline_core::ports::Ports;
use hookline_core::ports::{
    DeadLetters, DeliveryQueue, EventClaim, EventLog, FanOutCommit, PortError, WebhookStore,
};
use hookline_core::retention::Retention;
use hookline_core::rules::Ordering;
use hookline_core::telemetry::{self, Published};
use hookline_core::urn::Namespace;
#[cfg(doc)]
use hookline_core::urn::UrnIndex;
pub use route_cache::{AppRoutes, RouteCache, ROUTE_CACHE_MAX_AGE};
use time::OffsetDateTime;
use tracing::Instrument;

/// Largest event (its delivered body) a delivery message carries by default: ten of them fill
/// one `SendMessageBatch` of at most 64 KiB, the size SQS bills as one request.
pub const DEFAULT_EMBED_EVENT_BYTES: usize = 6 * 1024;

/// Default claim lease: twice the `ingest` function's 30 s timeout.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(60);

/// What ingest needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The URN namespace events must use.
    pub namespace: Namespace,
    /// How long events are kept in the event log (`HOOKLINE_RETENTION`).
    pub retention: Retention,
    /// How long a consumer's claim on an event lasts; longer than one fan-out can take
    /// (the function's timeout), so a concurrent copy waits instead of fanning out too.
    pub claim_lease: Duration,
    /// Largest event (delivered body, bytes) carried inside its delivery messages; larger
    /// ones are read from the event log by the deliverer. 0: never carried.
    pub embed_event_bytes: usize,
    /// Longest a cached App's routes are used, whatever their version says.
    pub route_cache_max_age: Duration,
    /// Label fan-out's metrics with the App id (`HOOKLINE_METRICS_APP_LABEL`).
    pub metrics_app_label: bool,
}

impl IngestSettings {
    /// The `ingest` Lambda's settings: `HOOKLINE_URN_NAMESPACE`, `HOOKLINE_METRICS_APP_LABEL`,
    /// `HOOKLINE_RETENTION`; the rest as defaulted.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            namespace: env.namespace()?,
            metrics_app_label: env.flag("HOOKLINE_METRICS_APP_LABEL", false)?,
            retention: Retention::from_env(env)?,
            ..Self::default()
        })
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            namespace: Namespace::default(),
            retention: Retention::default(),
            claim_lease: DEFAULT_CLAIM_LEASE,
            embed_event_bytes: DEFAULT_EMBED_EVENT_BYTES,
            route_cache_max_age: ROUTE_CACHE_MAX_AGE,
            metrics_app_label: false,
        }
    }
}

/// Why a message must be retried (it stays in the queue; redrive ends endless retries).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Storage or a queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Another consumer is fanning out a copy of this event right now.
    #[error("a copy of this event is being fanned out by another consumer")]
    InProgress,
    /// Some delivery messages were not accepted by the queue.
    #[error("{} of the event's delivery messages were not accepted", .0.len())]
    Unsent(Vec<DeliveryId>),
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fanned out into this many delivery messages.
    FannedOut(usize),
    /// A copy of an event already fanned out: dropped.
    Duplicate,
    /// Invalid: moved to the dead-letter queue with the reason.
    DeadLettered(String),
    /// A grant change: applied to this many of the client's webhooks.
    GrantApplied(usize),
    /// A chunk of a background job ran (or was a stale copy).
    JobChunk,
}

/// The fan-out, over the ports.
#[derive(Clone)]
pub struct Ingest {
    log: Arc<dyn EventLog>,
    deliveries: Arc<dyn DeliveryQueue>,
    /// Where set, claim, delivery messages and mark are one commit.
    fan_out_commit: Option<Arc<dyn FanOutCommit>>,
    dead_letters: Arc<dyn DeadLetters>,
    lifecycle: Lifecycle,
    routes: Arc<RouteCache>,
    settings: IngestSettings,
    jobs: Option<Jobs>,
}

impl Ingest {
    /// Fan-out over these ports.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        log: Arc<dyn EventLog>,
        deliveries: Arc<dyn DeliveryQueue>,
        dead_letters: Arc<dyn DeadLetters>,
        lifecycle: Lifecycle,
        settings: IngestSettings,
    ) -> Self {
        let routes = Arc::new(RouteCache::new(store.clone(), settings.route_cache_max_age));
        Self {
            log,
            deliveries,
            fan_out_commit: None,
            dead_letters,
            lifecycle,
            routes,
            settings,
            jobs: None,
        }
    }

    /// Fans out in one commit through `commit` (a store holding the event log and the
    /// deliveries together) instead of claim, send and mark.
    pub fn with_fan_out_commit(mut self, commit: Arc<dyn FanOutCommit>) -> Self {
        self.fan_out_commit = Some(commit);
        self
    }

    /// Also runs the chunks of background jobs that arrive on the events queue.
    pub fn with_jobs(mut self, jobs: Jobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Fan-out over a composition's ports, dead-lettering to `dead_letters` (the events DLQ).
    pub fn from_ports(
        ports: &Ports,
        dead_letters: Arc<dyn DeadLetters>,
        settings: IngestSettings,
    ) -> Self {
        let ingest = Self::new(
            ports.webhooks.clone(),
            ports.events.clone(),
            ports.deliveries.clone(),
            dead_letters,
            Lifecycle::from_ports(ports),
            settings,
        )
        .with_jobs(Jobs::from_ports(ports));
        match &ports.fan_out_commit {
            Some(commit) => ingest.with_fan_out_commit(commit.clone()),
            None => ingest,
        }
    }

    /// Handles a batch concurrently; returns the ids of the messages to retry (the SQS
    /// partial batch response). One bad message never fails the others. Every message was
    /// accepted before the batch started, so one route check per App serves the batch.
    pub async fn handle_batch(&self, messages: &[ReceivedMessage]) -> Vec<String> {
        let accepted_by = Instant::now();
        let results = join_all(
            messages
                .iter()
                .map(|m| self.handle_accepted(m, accepted_by)),
        )
        .await;
        messages
            .iter()
            .zip(results)
            .filter_map(|(m, r)| r.err().map(|_| m.message_id.clone()))
            .collect()
    }

    /// Handles one message from the events queue.
    pub async fn handle_message(&self, message: &ReceivedMessage) -> Result<Outcome, IngestError> {
        self.handle_accepted(message, Instant::now()).await
    }

    /// Handles one message that was in the queue by `accepted_by`.
    async fn handle_accepted(
        &self,
        message: &ReceivedMessage,
        accepted_by: Instant,
    ) -> Result<Outcome, IngestError> {
        let span = tracing::info_span!(
            "ingest",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            event_id = tracing::field::Empty
        );
        async {
            if let Some(chunk) = JobChunk::from_body(message.body.as_bytes()) {
                return match &self.jobs {
                    Some(jobs) => {
                        jobs.run_chunk(&chunk).await?;
                        Ok(Outcome::JobChunk)
                    }
                    None => {
                        self.dead_letter(
                            message,
                            "a background job's chunk, on a consumer that runs no jobs".into(),
                        )
                        .await
                    }
                };
            }
            match grant_message(message.body.as_bytes(), &self.settings.namespace) {
                Some(Ok(change)) => {
                    let outcome = self.lifecycle.apply_grant(&change).await?;
                    return Ok(Outcome::GrantApplied(outcome.webhooks.len()));
                }
                Some(Err(reason)) => return self.dead_letter(message, reason).await,
                None => {}
            }
            let rules = IntakeRules {
                namespace: &self.settings.namespace,
                catalog: Catalog::builtin(),
            };
            let now = OffsetDateTime::now_utc();
            let event = match Event::from_queue_message(
                message.body.as_bytes(),
                &message.message_id,
                rules,
                now,
            ) {
                Ok(event) => event,
                Err(e) => return self.refuse(message, &e).await,
            };
            tracing::Span::current().record("event_id", event.id.as_str());
            let result = self
                .fan_out_accepted(&event, accepted_by, Some(message.claim_id()))
                .await;
            report(&event, &result, "the message will be retried");
            result
        }
        .instrument(span)
        .await
    }

    async fn refuse(
        &self,
        message: &ReceivedMessage,
        error: &EventError,
    ) -> Result<Outcome, IngestError> {
        telemetry::event_published(Published::Rejected, None);
        self.dead_letter(message, format!("invalid event: {error}"))
            .await
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: String,
    ) -> Result<Outcome, IngestError> {
        self.dead_letters
            .dead_letter(&message.body, &reason)
            .await?;
        tracing::warn!(%reason, "message moved to the events DLQ");
        Ok(Outcome::DeadLettered(reason))
    }

    /// Fans out one validated event just taken in over HTTP, in its own span; the caller
    /// queues it on the events queue instead when this fails.
    pub async fn fan_out(&self, event: &Event) -> Result<Outcome, IngestError> {
        let span = tracing::info_span!("fan_out_at_intake", event_id = %event.id);
        async {
            let result = self.fan_out_accepted(event, Instant::now(), None).await;
            report(event, &result, "the event goes to the events queue");
            result
        }
        .instrument(span)
        .await
    }

    /// Fans out `event`, taken from the queue message `taken_by` when it came from one.
    async fn fan_out_accepted(
        &self,
        event: &Event,
        accepted_by: Instant,
        taken_by: Option<&str>,
    ) -> Result<Outcome, IngestError> {
        let expires = self.settings.retention.expiry(OffsetDateTime::now_utc());
        if let Some(commit) = &self.fan_out_commit {
            // Routes are read before the claim: the claim, the messages and the mark are
            // then one write, and a crash leaves the event either untouched or fanned out.
            let messages = self.delivery_messages(event, accepted_by).await?;
            let claim = commit
                .commit_fan_out(event, expires, self.settings.claim_lease, &messages)
                .await?;
            return match claim {
                EventClaim::Done => Ok(Outcome::Duplicate),
                EventClaim::InProgress => Err(IngestError::InProgress),
                EventClaim::New | EventClaim::Unfinished => Ok(Outcome::FannedOut(messages.len())),
            };
        }
        if let Some(by) = taken_by {
            // The event log's one write (DynamoDB): no mark, nothing to release on failure;
            // this message's retry finds the claim its own and fans out again.
            if let Some(claim) = self.log.claim_for_message(event, expires, by).await? {
                match claim {
                    EventClaim::Done => return Ok(Outcome::Duplicate),
                    EventClaim::InProgress => return Err(IngestError::InProgress),
                    EventClaim::Unfinished => {
                        tracing::info!("this message took the event before; repeating its fan-out")
                    }
                    EventClaim::New => {}
                }
                let messages = self.delivery_messages(event, accepted_by).await?;
                self.send(&messages).await?;
                return Ok(Outcome::FannedOut(messages.len()));
            }
        }
        match self
            .log
            .claim(event, expires, self.settings.claim_lease)
            .await?
        {
            EventClaim::Done => return Ok(Outcome::Duplicate),
            EventClaim::InProgress => return Err(IngestError::InProgress),
            EventClaim::Unfinished => {
                tracing::info!("fan-out of this event did not finish before; repeating it")
            }
            EventClaim::New => {}
        }
        let result = self.fan_out_claimed(event, accepted_by).await;
        if result.is_err() {
            if let Err(e) = self.log.release(&event.id).await {
                tracing::warn!(error = %e, "could not release the claim; the retry waits out the lease");
            }
        }
        result
    }

    async fn fan_out_claimed(
        &self,
        event: &Event,
        accepted_by: Instant,
    ) -> Result<Outcome, IngestError> {
        let messages = self.delivery_messages(event, accepted_by).await?;
        self.send(&messages).await?;
        self.log.mark_fanned_out(&event.id).await?;
        Ok(Outcome::FannedOut(messages.len()))
    }

    /// Sends the delivery messages; an error names those the queue did not take.
    async fn send(&self, messages: &[DeliveryMessage]) -> Result<(), IngestError> {
        if messages.is_empty() {
            return Ok(());
        }
        let unsent = self.deliveries.send_deliveries(messages).await?;
        match unsent.is_empty() {
            true => Ok(()),
            false => Err(IngestError::Unsent(unsent)),
        }
    }

    /// One delivery message per matching route of the event's App (routes as of
    /// `accepted_by`).
    async fn delivery_messages(
        &self,
        event: &Event,
        accepted_by: Instant,
    ) -> Result<Vec<DeliveryMessage>, IngestError> {
        let routes = self.routes.routes(event.urn.app_id(), accepted_by).await?;
        let matched = routes.matches(event);
        // Rendered once, and only when an ordered route needs its group.
        let urn = std::cell::OnceCell::new();
        let embedded = match matched.is_empty() {
            true => None,
            false => self.embeddable(event),
        };
        let messages: Vec<DeliveryMessage> = matched
            .into_iter()
            .map(|r| {
                let group = match r.ordering {
                    Ordering::None => None,
                    ordering => ordering.group(
                        r.webhook_id.as_str(),
                        urn.get_or_init(|| event.urn.to_string()),
                    ),
                };
                DeliveryMessage {
                    webhook_version: Some(r.version),
                    event: embedded.cloned(),
                    ..DeliveryMessage::first(&event.id, &r.webhook_id, group)
                }
            })
            .collect();
        Ok(messages)
    }

    /// The event, if its delivered body is small enough to ride in its delivery messages.
    fn embeddable<'e>(&self, event: &'e Event) -> Option<&'e Event> {
        let limit = self.settings.embed_event_bytes;
        if limit == 0 {
            return None;
        }
        let size = serde_json::to_vec(event)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        (size <= limit).then_some(event)
    }
}

/// Logs and counts what became of a fan-out; `on_error` says what happens to the event then.
fn report(event: &Event, result: &Result<Outcome, IngestError>, on_error: &str) {
    match result {
        Ok(Outcome::FannedOut(n)) => {
            telemetry::fanned_out(*n, event.urn.app_id());
            tracing::info!(deliveries = n, event_type = %event.event_type, urn = %event.urn, "event fanned out")
        }
        Ok(Outcome::Duplicate) => {
            telemetry::event_published(Published::Duplicate, Some(event.urn.app_id()));
            tracing::info!("event already fanned out; copy dropped")
        }
        Ok(Outcome::DeadLettered(_) | Outcome::GrantApplied(_) | Outcome::JobChunk) => {}
        Err(e) => tracing::warn!(error = %e, "fan-out failed; {on_error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::event_type::EventTypeFilter;
    use hookline_core::urn::UrnPattern;
    use hookline_core::webhook::{Route, WebhookId, WebhookUrl};

    /// The routes of `routes` that `event` goes to.
    fn match_routes(routes: &[Route], event: &Event) -> Vec<Route> {
        AppRoutes::new(1, routes.to_vec())
            .matches(event)
            .into_iter()
            .cloned()
            .collect()
    }

    fn route(app: &str, patterns: &[&str], types: &[&str], enabled: bool) -> Route {
        Route {
            webhook_id: WebhookId::generate(),
            version: 1,
            app_id: app.into(),
            patterns: patterns
                .iter()
                .map(|p| UrnPattern::parse_default(p).expect("pattern"))
                .collect(),
            event_types: types
                .iter()
                .map(|t| EventTypeFilter::parse(t, Catalog::builtin()).expect("type"))
                .collect(),
            enabled,
            endpoint: hookline_core::webhook::Endpoint::Http(
                WebhookUrl::parse_stored("https://crm.example.com/").expect("url"),
            ),
            filter: None,
            ordering: Default::default(),
        }
    }

    fn event(urn: &str, event_type: &str) -> Event {
        let body = format!(r#"{{"id":"evt_1","type":"{event_type}","urn":"{urn}","data":{{}}}}"#);
        let rules = IntakeRules {
            namespace: &Namespace::default(),
            catalog: Catalog::builtin(),
        };
        Event::from_intake(body.as_bytes(), rules, OffsetDateTime::now_utc()).expect("valid event")
    }

    #[test]
    fn routes_match_by_urn_pattern_type_and_enabled() {
        let routes = vec![
            route("A1", &["urn:allthings:app:A1:*"], &["*"], true),
            route(
                "A1",
                &["urn:allthings:app:A1:ticket:CAT7:*"],
                &["ticket.created"],
                true,
            ),
            route(
                "A1",
                &["urn:allthings:app:A1:ticket:CAT8:*"],
                &["ticket.*"],
                true,
            ),
            route("A1", &["urn:allthings:app:A1:*"], &["booking.*"], true),
            route("A1", &["urn:allthings:app:A1:*"], &["*"], false),
            route(
                "A1",
                &[
                    "urn:allthings:app:A1:ticket:*",
                    "urn:allthings:app:A1:ticket:CAT7:T99",
                ],
                &["ticket.*"],
                true,
            ),
        ];
        let matched = match_routes(
            &routes,
            &event("urn:allthings:app:A1:ticket:CAT7:T99", "ticket.created"),
        );
        let mut want = vec![
            &routes[0].webhook_id,
            &routes[1].webhook_id,
            &routes[5].webhook_id,
        ];
        want.sort();
        assert_eq!(
            matched.iter().map(|r| &r.webhook_id).collect::<Vec<_>>(),
            want
        );
        let matched = match_routes(
            &routes,
            &event("urn:allthings:app:A1:booking:B1", "booking.created"),
        );
        assert_eq!(matched.len(), 2);
        assert!(match_routes(&[], &event("urn:allthings:app:A1", "user.registered")).is_empty());
    }

    #[test]
    fn an_operational_event_never_goes_to_the_webhook_it_is_about() {
        let routes = vec![
            route("A1", &["urn:allthings:app:A1:*"], &["*"], true),
            route("A1", &["urn:allthings:app:A1:*"], &["webhook.*"], true),
            route("A1", &["urn:allthings:app:A1:*"], &["ticket.*"], true),
        ];
        let about = &routes[0].webhook_id;
        let event = hookline_core::operational::operational_event(
            hookline_core::operational::Operational::Disabled,
            about,
            "A1",
            "failing",
            Default::default(),
            &Namespace::default(),
            OffsetDateTime::now_utc(),
        )
        .expect("event");
        let matched = match_routes(&routes, &event);
        assert_eq!(
            matched.iter().map(|r| &r.webhook_id).collect::<Vec<_>>(),
            [&routes[1].webhook_id]
        );
    }

    #[test]
    fn a_payload_filter_keeps_only_the_events_it_matches() {
        let pattern = serde_json::json!({"data": {"priority": ["high"]}});
        let mut filtered = route("A1", &["urn:allthings:app:A1:*"], &["*"], true);
        filtered.filter =
            Some(hookline_core::filter::Filter::parse(&pattern, "filter").expect("pattern"));
        let routes = vec![
            filtered,
            route("A1", &["urn:allthings:app:A1:*"], &["*"], true),
        ];
        let with = |data: &str| {
            let body = format!(
                r#"{{"id":"evt_1","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:C:T","data":{data}}}"#
            );
            let rules = IntakeRules {
                namespace: &Namespace::default(),
                catalog: Catalog::builtin(),
            };
            Event::from_intake(body.as_bytes(), rules, OffsetDateTime::now_utc()).expect("event")
        };
        let high = match_routes(&routes, &with(r#"{"priority":"high"}"#));
        assert_eq!(high.len(), 2);
        let low = match_routes(&routes, &with(r#"{"priority":"low"}"#));
        assert_eq!(
            low.iter().map(|r| &r.webhook_id).collect::<Vec<_>>(),
            [&routes[1].webhook_id]
        );
    }
}
