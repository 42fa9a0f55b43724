//! Delivery: each message of the `deliveries` queue is one (event, webhook) pair, POSTed to
//! the endpoint signed per Standard Webhooks, with backoff through the queue's
//! visibility and redrive to the DLQ.
//!
//! Per message: read the webhook (deleted or disabled: nothing is sent) and the event from
//! the event log (the webhook suspended for the event's App: nothing is sent); sign and POST;
//! record the attempt; then, by the retry policy: acknowledge (2xx and final failures),
//! disable the webhook (410), or hide the message until the next backoff step and report it
//! failed so the queue brings it back — or, on the last allowed attempt, leaves it to redrive
//! into the DLQ.
//!
//! Per-webhook rules: a webhook's own retry schedule replaces the deployment's (the attempt
//! count of a run is the message's receive count plus the attempts its earlier copies made);
//! exhausted deliveries are moved to the DLQ by the deliverer itself, so the queue's
//! `maxReceiveCount` is only a backstop. A rate limit reserves each delivery a start slot
//! ([`RateLimiter`]): a slot within [`DeliverSettings::max_wait_in_place`] is waited for in
//! place, a later one sends an unordered delivery again, delayed, holding its slot (recorded
//! `delayed`); an ordered one waits in place up to [`DeliverSettings::max_ordered_wait`], else
//! is hidden until its slot (that receive counts toward its retries). Ordered deliveries of
//! one group in a batch go one after another, and after one is not acknowledged the rest of
//! its group come back unattempted, as a FIFO queue requires.
//!
//! Failure runs: a final failure or an exhausted delivery counts in the webhook's run (an
//! atomic counter beside it in the store); a 2xx ends a run, with a write only when one is
//! going on (the webhook was read anyway). A run older than the [`DisablePolicy`]'s `after`
//! with at least `min_failures` disables the webhook (`failing`).
//!
//! Reads: a message carrying its event (small events do) needs no event-log read, and a
//! webhook document cached within [`DeliverSettings::webhook_cache_ttl`] at least as new as
//! the message's version needs no store read ([`WebhookCache`]).
#![warn(missing_docs)]

pub mod event_cache;
pub mod webhook_cache;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use hookline_core::adapters::memory::MemoryRateLimiter;
use hookline_core::config::{Env, SettingError};
use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryMessage, ReceivedMessage};
use hookline_core::destination::DestinationMessage;
use hookline_core::event::Event;
use hookline_core::lifecycle::Lifecycle;
use hookline_core::outbound::{OutboundError, OutboundResponse};
use hookline_core::outbound::{OutboundMethod, OutboundRequest};
use hookline_core::ports::DestinationSender;
use hookline_core::ports::Ports;
use hookline_core::ports::{
    AttemptLog, DeliveryQueue, EventLog, HttpSender, PortError, RateLimiter, Vault, WebhookStore,
};
use hookline_core::retention::Retention;
use hookline_core::retry::{parse_retry_after, AttemptOutcome, Decision, RetryPolicy};
use hookline_core::sealed::{Keyring, SealError};
use hookline_core::signing::signature_header;
use hookline_core::target::TargetPolicy;
use hookline_core::telemetry;
use hookline_core::timestamp::{from_unix_ms, unix_ms};
use hookline_core::tokens::Tokens;
use hookline_core::webhook::{CredentialError, DisablePolicy, DisabledReason};
use hookline_core::webhook::{Endpoint, Webhook, WebhookUrl};
use time::OffsetDateTime;
use tracing::Instrument;
pub use webhook_cache::WebhookCache;

/// Default time an endpoint has to answer a delivery.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of deliveries of one batch in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How long the `deliver` Lambda's webhook copies serve (`HOOKLINE_WEBHOOK_CACHE_SECS`):
/// the longest a disable or delete takes to reach deliveries fanned out before it.
pub const LAMBDA_WEBHOOK_CACHE_TTL: Duration = Duration::from_secs(5);
/// Longest response excerpt kept in the attempt log.
pub const EXCERPT_CHARS: usize = 1024;

/// What delivery needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct DeliverSettings {
    /// Which outcomes retry, and when.
    pub policy: RetryPolicy,
    /// Time an endpoint has to answer.
    pub timeout: Duration,
    /// Deliveries in flight at once per batch.
    pub concurrency: usize,
    /// How long attempts are kept (`HOOKLINE_RETENTION`).
    pub retention: Retention,
    /// `user-agent` of deliveries.
    pub user_agent: String,
    /// When a run of failures disables a webhook.
    pub disable: DisablePolicy,
    /// Longest wait for a rate-limit slot spent in place; a later slot sends the delivery
    /// again, delayed.
    pub max_wait_in_place: Duration,
    /// Longest wait for a rate-limit slot an ordered delivery spends in place (it cannot be
    /// sent again without losing its place); a later slot hides it until then.
    pub max_ordered_wait: Duration,
    /// How long a webhook document read for one delivery serves later ones of the same or an
    /// older version (zero: every delivery reads it). Also how long a disable or delete can
    /// take to reach deliveries fanned out before it.
    pub webhook_cache_ttl: Duration,
    /// Events kept once read from the event log (immutable, so never stale): an event
    /// fanned out to W webhooks costs one read, not W. 0 keeps none.
    pub event_cache_entries: usize,
}

impl Default for DeliverSettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            retention: Retention::default(),
            user_agent: format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
            disable: DisablePolicy::default(),
            max_wait_in_place: Duration::from_secs(1),
            max_ordered_wait: Duration::from_secs(5),
            webhook_cache_ttl: Duration::ZERO,
            event_cache_entries: event_cache::EVENT_CACHE_ENTRIES,
        }
    }
}

impl DeliverSettings {
    /// The `deliver` Lambda's settings: `HOOKLINE_DELIVERY_TIMEOUT_SECS` (default 10),
    /// `HOOKLINE_DELIVERY_CONCURRENCY` (default 16), `HOOKLINE_DISABLE_AFTER` (default 5d),
    /// `HOOKLINE_DISABLE_MIN_FAILURES` (default 10) and `HOOKLINE_WEBHOOK_CACHE_SECS` (default
    /// 5: how long a webhook document read serves later deliveries of its version) and
    /// `HOOKLINE_RETENTION` (default 30d: how long attempts are kept).
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            timeout: Duration::from_secs(
                env.number("HOOKLINE_DELIVERY_TIMEOUT_SECS", DEFAULT_TIMEOUT.as_secs())?,
            ),
            concurrency: env.number("HOOKLINE_DELIVERY_CONCURRENCY", DEFAULT_CONCURRENCY)?,
            disable: DisablePolicy::from_env(env)?,
            retention: Retention::from_env(env)?,
            webhook_cache_ttl: Duration::from_secs(env.number(
                "HOOKLINE_WEBHOOK_CACHE_SECS",
                LAMBDA_WEBHOOK_CACHE_TTL.as_secs(),
            )?),
            ..Self::default()
        })
    }
}

/// Which endpoints deliveries may reach on AWS: `HOOKLINE_ALLOW_PRIVATE_TARGETS` (default
/// false), read as every binary reads it.
pub fn target_policy(env: &Env) -> Result<TargetPolicy, SettingError> {
    TargetPolicy::from_env(env, false)
}

/// Why a message must come back later (it is reported failed).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The endpoint failed in a retryable way; the message is hidden until the next try.
    #[error("retry in {0:?}")]
    RetryLater(Duration),
    /// An ordered delivery waits for its rate-limit slot; it is hidden until then.
    #[error("waiting {0:?} for a rate-limit slot")]
    RateLimited(Duration),
    /// An earlier delivery of its ordering group in the same batch was not acknowledged.
    #[error("an earlier delivery of its ordering group is not done")]
    GroupBlocked,
    /// Storage or the queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Attempts made while a batch is handled, recorded together when it is done.
type PendingAttempts = std::sync::Mutex<Vec<Attempt>>;

/// The deliverer, over the ports.
#[derive(Clone)]
pub struct Deliver {
    store: Arc<dyn WebhookStore>,
    events: Arc<dyn EventLog>,
    attempts: Arc<dyn AttemptLog>,
    queue: Arc<dyn DeliveryQueue>,
    http: Arc<dyn HttpSender>,
    tokens: Arc<Tokens>,
    destinations: Option<Arc<dyn DestinationSender>>,
    vault: Arc<dyn Vault>,
    lifecycle: Lifecycle,
    limiter: Arc<dyn RateLimiter>,
    webhooks: Arc<WebhookCache>,
    event_cache: Arc<event_cache::EventCache>,
    settings: DeliverSettings,
}

/// Time since `then`, zero if `then` is in the future (a publisher's clock ahead of ours).
fn now_elapsed(then: OffsetDateTime) -> Duration {
    Duration::try_from(OffsetDateTime::now_utc() - then).unwrap_or_default()
}

fn jitter_sample() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Splits a batch into lanes: each unordered message alone, each ordering group's messages
/// together in batch order (the order a FIFO queue hands them out).
fn lanes(messages: &[ReceivedMessage]) -> Vec<Vec<Parsed<'_>>> {
    let mut lanes: Vec<Vec<Parsed<'_>>> = Vec::with_capacity(messages.len());
    let mut groups: HashMap<String, usize> = HashMap::new();
    for m in messages {
        let parsed = serde_json::from_str::<DeliveryMessage>(&m.body);
        let group = parsed.as_ref().ok().and_then(|d| d.group.clone());
        match group {
            Some(g) => match groups.get(&g) {
                Some(&i) => lanes[i].push((m, parsed)),
                None => {
                    groups.insert(g, lanes.len());
                    lanes.push(vec![(m, parsed)]);
                }
            },
            None => lanes.push(vec![(m, parsed)]),
        }
    }
    lanes
}

/// A received message with its body parsed (once) as a delivery message.
type Parsed<'m> = (
    &'m ReceivedMessage,
    Result<DeliveryMessage, serde_json::Error>,
);

fn excerpt(body: &str) -> String {
    body.chars().take(EXCERPT_CHARS).collect()
}

/// Why no request could be built for an attempt.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The event's body could not be made.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A secret or header value of the webhook does not open.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The webhook delivers to an AWS destination, not a URL.
    #[error("the webhook has no URL: it delivers to an AWS destination")]
    NotHttp,
}

/// An attempt's signed parts: the event's body and the Standard Webhooks headers signed with
/// every active secret, then the webhook's custom headers. An HTTP endpoint gets them as a
/// POST ([`signed_request`]), an AWS destination as a message and its attributes.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, then the custom headers.
    pub headers: Vec<(String, String)>,
    /// The event envelope.
    pub body: Vec<u8>,
}

/// Signs an attempt, opening the webhook's secrets and header values with `keys` (here, and
/// only here).
pub fn sign(
    webhook: &Webhook,
    keys: &Keyring,
    event: &Event,
    now: OffsetDateTime,
) -> Result<Signed, RequestError> {
    let body = event
        .delivery_body()
        .map_err(|e| PortError::Corrupt(e.to_string()))?;
    let ts = now.unix_timestamp();
    let secrets = webhook.active_secrets(keys, now)?;
    // Room for what follows: the custom headers, `webhook-backfill`, and the two a POST puts
    // in front ([`post`]), so no attempt reallocates its headers.
    let mut headers = Vec::with_capacity(6 + webhook.spec.custom_headers.len());
    headers.extend([
        ("webhook-id".to_owned(), event.id.to_string()),
        ("webhook-timestamp".to_owned(), ts.to_string()),
        (
            "webhook-signature".to_owned(),
            signature_header(&secrets, event.id.as_str(), ts, &body),
        ),
    ]);
    headers.extend(webhook.open_headers(keys)?);
    Ok(Signed { headers, body })
}

/// The POST of a signed attempt to `url`: `content-type` and `user-agent`, then the signed
/// headers.
pub fn post(
    url: &WebhookUrl,
    signed: Signed,
    user_agent: &str,
    timeout: Duration,
) -> OutboundRequest {
    let mut headers = signed.headers;
    headers.splice(
        0..0,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("user-agent".to_owned(), user_agent.to_owned()),
        ],
    );
    OutboundRequest {
        method: OutboundMethod::Post,
        url: url.clone(),
        headers,
        body: signed.body,
        timeout,
    }
}

/// The request for one attempt to an HTTP endpoint ([`sign`], then [`post`]).
pub fn signed_request(
    webhook: &Webhook,
    keys: &Keyring,
    event: &Event,
    now: OffsetDateTime,
    user_agent: &str,
    timeout: Duration,
) -> Result<OutboundRequest, RequestError> {
    let url = webhook.spec.endpoint.url().ok_or(RequestError::NotHttp)?;
    Ok(post(
        url,
        sign(webhook, keys, event, now)?,
        user_agent,
        timeout,
    ))
}

impl Deliver {
    /// The deliverer over these ports; `vault` opens the webhooks' credentials, `lifecycle`
    /// disables webhooks and announces it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        events: Arc<dyn EventLog>,
        attempts: Arc<dyn AttemptLog>,
        queue: Arc<dyn DeliveryQueue>,
        http: Arc<dyn HttpSender>,
        vault: Arc<dyn Vault>,
        lifecycle: Lifecycle,
        settings: DeliverSettings,
    ) -> Self {
        let webhooks = WebhookCache::new(settings.webhook_cache_ttl);
        let webhooks = Arc::new(match store.change_counter() {
            Some(changes) => webhooks.with_changes(changes),
            None => webhooks,
        });
        Self {
            store,
            events,
            attempts,
            queue,
            tokens: Arc::new(Tokens::new(http.clone())),
            http,
            destinations: None,
            vault,
            lifecycle,
            limiter: Arc::new(MemoryRateLimiter::default()),
            webhooks,
            event_cache: Arc::new(event_cache::EventCache::new(settings.event_cache_entries)),
            settings,
        }
    }

    /// The deliverer over a composition's ports (its rate limiter included).
    pub fn from_ports(ports: &Ports, http: Arc<dyn HttpSender>, settings: DeliverSettings) -> Self {
        let deliver = Self::new(
            ports.webhooks.clone(),
            ports.events.clone(),
            ports.attempts.clone(),
            ports.deliveries.clone(),
            http,
            ports.vault.clone(),
            Lifecycle::from_ports(ports),
            settings,
        )
        .with_rate_limiter(ports.rate_limiter.clone());
        match &ports.destinations {
            Some(sender) => deliver.with_destinations(sender.clone()),
            None => deliver,
        }
    }

    /// Delivers to AWS destinations with `sender` (without one, their deliveries fail with
    /// "this deployment does not deliver to AWS destinations").
    pub fn with_destinations(mut self, sender: Arc<dyn DestinationSender>) -> Self {
        self.destinations = Some(sender);
        self
    }

    /// Uses `limiter` for webhooks' rate limits (default: in memory, exact for one process).
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Delivers a batch, `concurrency` at a time; returns the ids of messages to retry.
    /// Messages of one ordering group go one after another in batch order, and once one is
    /// not acknowledged the rest of its group are returned unattempted.
    /// The batch's attempts are recorded together at its end (one transaction on SQLite);
    /// if that fails, every message of the batch is retried, as one failed record would be.
    pub async fn handle_batch(&self, messages: &[ReceivedMessage]) -> Vec<String> {
        let pending = PendingAttempts::default();
        // Futures built up front (not in a stream closure) keep the batch future `Send` for
        // any caller lifetime, so it can be spawned.
        let lanes: Vec<_> = lanes(messages)
            .into_iter()
            .map(|lane| self.handle_lane(lane, &pending))
            .collect();
        let failed: Vec<String> = stream::iter(lanes)
            .buffer_unordered(self.settings.concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        match self.flush(pending).await {
            Ok(()) => failed,
            Err(e) => {
                tracing::error!(error = %e, messages = messages.len(), "attempts could not be recorded; the batch comes back");
                messages.iter().map(|m| m.message_id.clone()).collect()
            }
        }
    }

    /// Handles one lane (one message, or an ordering group's messages in order); returns the
    /// ids of those to retry.
    async fn handle_lane(&self, lane: Vec<Parsed<'_>>, pending: &PendingAttempts) -> Vec<String> {
        let mut failed = Vec::new();
        for (message, parsed) in lane {
            if !failed.is_empty() {
                tracing::info!(message_id = %message.message_id, error = %DeliverError::GroupBlocked, "not attempted; it comes back in order");
                failed.push(message.message_id.clone());
                continue;
            }
            if self
                .handle_in_batch(message, parsed, pending)
                .await
                .is_err()
            {
                failed.push(message.message_id.clone());
            }
        }
        failed
    }

    async fn flush(&self, pending: PendingAttempts) -> Result<(), PortError> {
        let attempts = pending.into_inner().unwrap_or_else(|p| p.into_inner());
        if attempts.is_empty() {
            return Ok(());
        }
        let expires = self.settings.retention.expiry(OffsetDateTime::now_utc());
        self.attempts.record_many(&attempts, expires).await
    }

    /// Handles one message of the deliveries queue and records its attempt.
    pub async fn handle_message(
        &self,
        message: &ReceivedMessage,
    ) -> Result<AttemptStatus, DeliverError> {
        let pending = PendingAttempts::default();
        let parsed = serde_json::from_str(&message.body);
        let result = self.handle_in_batch(message, parsed, &pending).await;
        self.flush(pending).await?;
        result
    }

    async fn handle_in_batch(
        &self,
        message: &ReceivedMessage,
        parsed: Result<DeliveryMessage, serde_json::Error>,
        pending: &PendingAttempts,
    ) -> Result<AttemptStatus, DeliverError> {
        let delivery = match parsed {
            Ok(d) => d,
            Err(e) => {
                // Nothing can be delivered from it; retrying would not help.
                tracing::error!(message_id = %message.message_id, error = %e, "not a delivery message; dropped");
                return Ok(AttemptStatus::Skipped);
            }
        };
        let span = tracing::info_span!(
            "deliver",
            delivery_id = %delivery.delivery_id,
            event_id = %delivery.event_id,
            webhook_id = %delivery.webhook_id,
            attempt = delivery.prior_attempts + delivery.run_attempts + message.receive_count
        );
        self.deliver(&delivery, message, pending)
            .instrument(span)
            .await
    }

    fn record(
        &self,
        pending: &PendingAttempts,
        delivery: &DeliveryMessage,
        attempt: u32,
        status: AttemptStatus,
        event: Option<&Event>,
        fill: impl FnOnce(&mut Attempt),
    ) {
        let mut a = Attempt {
            attempt_id: hookline_core::delivery::new_attempt_id(),
            webhook_id: delivery.webhook_id.clone(),
            delivery_id: delivery.delivery_id.clone(),
            event_id: delivery.event_id.clone(),
            app_id: event.map(|e| e.urn.app_id().to_owned()),
            event_type: event.map(|e| e.event_type.as_str().to_owned()),
            attempt,
            at: OffsetDateTime::now_utc(),
            status,
            response_status: None,
            error: None,
            latency_ms: 0,
            response_excerpt: String::new(),
            next_retry_at: None,
            backfill: delivery.backfill,
        };
        fill(&mut a);
        telemetry::attempt(status);
        pending.lock().unwrap_or_else(|p| p.into_inner()).push(a);
    }

    async fn deliver(
        &self,
        delivery: &DeliveryMessage,
        message: &ReceivedMessage,
        pending: &PendingAttempts,
    ) -> Result<AttemptStatus, DeliverError> {
        // The queue's receive count plus what earlier copies of this run made drive the
        // webhook's retry budget; the attempt number shown keeps counting across DLQ replays
        // and redeliveries.
        let received = message.receive_count.max(1);
        let spent = delivery.run_attempts.saturating_add(received);
        let attempt = delivery.prior_attempts.saturating_add(spent);
        let webhook = match self.webhook(delivery).await? {
            Some(w) if w.spec.enabled => w,
            Some(_) => {
                let why = "webhook is disabled";
                tracing::info!(why, "not delivered");
                self.record(
                    pending,
                    delivery,
                    attempt,
                    AttemptStatus::Skipped,
                    delivery.event.as_ref(),
                    |a| a.error = Some(why.into()),
                );
                return Ok(AttemptStatus::Skipped);
            }
            None => {
                // Nothing is recorded for a webhook that is gone: nobody can read its log,
                // and an App purge leaves none of its attempts behind.
                tracing::info!(why = "webhook was deleted", "not delivered");
                telemetry::attempt(AttemptStatus::Skipped);
                return Ok(AttemptStatus::Skipped);
            }
        };
        let read;
        let event = match &delivery.event {
            Some(event) => Some(event),
            None => {
                read = self
                    .event_cache
                    .get_or_read(&delivery.event_id, || self.events.get(&delivery.event_id))
                    .await?;
                read.as_deref()
            }
        };
        let Some(event) = event else {
            let why = "event is no longer in the event log";
            tracing::warn!(why, "not delivered");
            self.record(
                pending,
                delivery,
                attempt,
                AttemptStatus::Skipped,
                None,
                |a| a.error = Some(why.into()),
            );
            return Ok(AttemptStatus::Skipped);
        };
        let app = event.urn.app_id();
        if !webhook.spec.names_app(app) {
            // The webhook was changed to no longer name the event's App after this delivery
            // was fanned out, or the App was purged: its queued deliveries and retries of
            // that App's events stop here. The skip is recorded while the event is logged;
            // a purged App's events are gone, and so nothing of it is written back.
            let why = format!("the webhook no longer covers App {app}");
            tracing::info!(why, "not delivered");
            if self.events.get(&delivery.event_id).await?.is_some() {
                self.record(
                    pending,
                    delivery,
                    attempt,
                    AttemptStatus::Skipped,
                    Some(event),
                    |a| {
                        a.error = Some(why);
                    },
                );
            } else {
                telemetry::attempt(AttemptStatus::Skipped);
            }
            return Ok(AttemptStatus::Skipped);
        }
        if let Some(s) = webhook.suspended_for(event.urn.app_id()) {
            let why = format!("{} on App {}", s.reason, s.app_id);
            tracing::info!(
                why,
                "not delivered: the webhook is suspended for the event's App"
            );
            self.record(
                pending,
                delivery,
                attempt,
                AttemptStatus::Skipped,
                Some(event),
                |a| a.error = Some(why),
            );
            return Ok(AttemptStatus::Skipped);
        }
        if let Some(limit) = webhook.spec.rate_limit {
            // The slot a deferred copy holds counts on its first receive only (a retry after
            // that takes a new slot like any other attempt), and only if the copy is not back
            // a whole interval late (sending it now would crowd the slots reserved since):
            // then it takes a new one.
            let now = OffsetDateTime::now_utc();
            let held = delivery
                .not_before
                .filter(|_| message.receive_count <= 1)
                .and_then(from_unix_ms)
                .filter(|slot| *slot + limit.interval() > now);
            let slot = match held {
                Some(slot) => slot,
                None => self.limiter.reserve(&webhook.id, limit, now).await?,
            };
            let wait = Duration::try_from(slot - now).unwrap_or_default();
            let in_place = if delivery.group.is_some() {
                self.settings.max_ordered_wait
            } else {
                self.settings.max_wait_in_place
            };
            if wait > in_place {
                let why = format!(
                    "rate limit {}/s: waiting {} ms for its slot",
                    limit.per_second,
                    wait.as_millis()
                );
                tracing::info!(why, "delayed");
                telemetry::rate_limit_delay(true);
                self.record(
                    pending,
                    delivery,
                    attempt,
                    AttemptStatus::Delayed,
                    Some(event),
                    |a| {
                        a.error = Some(why);
                        a.next_retry_at = Some(slot);
                    },
                );
                if delivery.group.is_some() {
                    self.queue
                        .retry_later(delivery, &message.receipt, wait)
                        .await?;
                    return Err(DeliverError::RateLimited(wait));
                }
                let copy = DeliveryMessage {
                    run_attempts: spent.saturating_sub(1),
                    not_before: Some(unix_ms(slot)),
                    ..delivery.clone()
                };
                // Back a little early (SQS delays in whole seconds, rounding up), to wait the
                // rest in place and start on the slot.
                self.queue
                    .send_later(&copy, wait.saturating_sub(in_place))
                    .await?;
                return Ok(AttemptStatus::Delayed);
            }
            if !wait.is_zero() {
                telemetry::rate_limit_delay(false);
                tokio::time::sleep(wait).await;
            }
        }
        let now = OffsetDateTime::now_utc();
        let mut signed = match self.signed(&webhook, event, now).await? {
            Ok(signed) => signed,
            Err(e) => {
                // Never sent signed with garbage: a final failure, said in the attempt log.
                let why = format!("not sent: {e}");
                tracing::error!(webhook_id = %webhook.id, error = %e, "a credential of the webhook does not open; delivery failed");
                self.record(
                    pending,
                    delivery,
                    attempt,
                    AttemptStatus::Failed,
                    Some(event),
                    |a| a.error = Some(why.clone()),
                );
                self.count_failure(&webhook, now, &why).await;
                return Ok(AttemptStatus::Failed);
            }
        };
        if delivery.backfill {
            signed
                .headers
                .push(("webhook-backfill".to_owned(), "true".to_owned()));
        }
        let result = self.send(&webhook, event, delivery, signed).await;
        match &result {
            Ok(r) => telemetry::response(Some(r.status), r.latency),
            Err(_) => telemetry::response(None, now_elapsed(now)),
        }
        let outcome = match &result {
            Ok(r) => AttemptOutcome::Status {
                code: r.status,
                retry_after: r
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, now)),
            },
            Err(e) => e.outcome(),
        };
        let policy = match &webhook.spec.retry {
            Some(retry) => Cow::Owned(retry.policy(&self.settings.policy)),
            None => Cow::Borrowed(&self.settings.policy),
        };
        let decision = policy.decide(outcome, spent, jitter_sample());
        let status = match decision {
            Decision::Delivered => AttemptStatus::Delivered,
            Decision::RetryAfter(_) => AttemptStatus::Retrying,
            Decision::Exhausted => AttemptStatus::Exhausted,
            Decision::Failed => AttemptStatus::Failed,
            Decision::Gone => AttemptStatus::Gone,
        };
        let next_retry_at = match decision {
            Decision::RetryAfter(d) => Some(now + d),
            _ => None,
        };
        self.record(pending, delivery, attempt, status, Some(event), |a| {
            a.next_retry_at = next_retry_at;
            match &result {
                Ok(r) => {
                    a.response_status = Some(r.status);
                    a.latency_ms = u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX);
                    a.response_excerpt = excerpt(&r.body);
                }
                Err(e) => a.error = Some(e.to_string()),
            }
        });
        match &result {
            Ok(r) => tracing::info!(
                status = r.status,
                ?decision,
                latency_ms = r.latency.as_millis() as u64,
                "attempt"
            ),
            Err(e) => tracing::info!(error = %e, ?decision, "attempt"),
        }
        // What a failure run and a disable record; built only on those paths.
        let error = || match &result {
            Ok(r) => format!("the endpoint answered {}", r.status),
            Err(e) => e.to_string(),
        };
        match decision {
            Decision::Delivered => {
                telemetry::delivered_after(now_elapsed(event.timestamp));
                if webhook.state.failures.is_some() {
                    self.end_failure_run(&webhook).await;
                }
                Ok(status)
            }
            Decision::Failed => {
                self.count_failure(&webhook, now, &error()).await;
                Ok(status)
            }
            Decision::Gone => {
                self.webhooks.forget(&webhook.id);
                self.lifecycle
                    .disable(&webhook, DisabledReason::Gone, Some(error()), None)
                    .await?;
                Ok(status)
            }
            Decision::RetryAfter(delay) => {
                self.queue
                    .retry_later(delivery, &message.receipt, delay)
                    .await?;
                Err(DeliverError::RetryLater(delay))
            }
            Decision::Exhausted => {
                // The DLQ copy carries every attempt made so far, so a replay keeps counting.
                let dead = DeliveryMessage {
                    prior_attempts: attempt,
                    run_attempts: 0,
                    not_before: None,
                    ..delivery.clone()
                };
                let reason = format!(
                    "{spent} attempts failed (the webhook allows {}); last: {}",
                    policy.max_receive_count(),
                    error()
                );
                self.queue.dead_letter(&dead, &reason).await?;
                self.count_failure(&webhook, now, &error()).await;
                tracing::warn!(reason, "retries exhausted; the delivery moved to the DLQ");
                Ok(status)
            }
        }
    }

    /// The signed parts of an attempt; a credential that names a key this process has not
    /// loaded reloads the keys once (another process rotated them). The inner error is a
    /// credential that does not open.
    async fn signed(
        &self,
        webhook: &Webhook,
        event: &Event,
        now: OffsetDateTime,
    ) -> Result<Result<Signed, CredentialError>, PortError> {
        let keys = self.vault.keyring().await?;
        let first = sign(webhook, &keys, event, now);
        let retry = matches!(
            &first,
            Err(RequestError::Credential(CredentialError {
                error: SealError::UnknownKey(_),
                ..
            }))
        );
        let result = if retry {
            sign(webhook, &*self.vault.refresh().await?, event, now)
        } else {
            first
        };
        match result {
            Ok(signed) => Ok(Ok(signed)),
            Err(RequestError::Credential(e)) => Ok(Err(e)),
            Err(RequestError::Port(e)) => Err(e),
            Err(RequestError::NotHttp) => {
                Err(PortError::Corrupt(RequestError::NotHttp.to_string()))
            }
        }
    }

    /// Sends a signed attempt where the webhook delivers: POSTed to its URL, or put on its
    /// AWS destination with the signed headers as message attributes.
    async fn send(
        &self,
        webhook: &Webhook,
        event: &Event,
        delivery: &DeliveryMessage,
        signed: Signed,
    ) -> Result<OutboundResponse, OutboundError> {
        let timeout = self.settings.timeout;
        match &webhook.spec.endpoint {
            Endpoint::Http(url) => {
                let request = post(url, signed, &self.settings.user_agent, timeout);
                match &webhook.spec.oauth2 {
                    None => self.http.send(request).await,
                    Some(_) => self.send_with_token(webhook, request).await,
                }
            }
            Endpoint::Aws(destination) => {
                let Some(sender) = &self.destinations else {
                    return Err(OutboundError::Other(
                        "this deployment does not deliver to AWS destinations".into(),
                    ));
                };
                let message = DestinationMessage {
                    attributes: signed.headers,
                    body: signed.body,
                    event_type: event.event_type.as_str().to_owned(),
                    urn: Some(event.urn.to_string()),
                    group: delivery.group.clone(),
                    dedup_id: delivery.delivery_id.to_string(),
                };
                sender.send(destination, &message).await
            }
        }
    }

    /// POSTs with the webhook's OAuth2 bearer token (cached until shortly before it
    /// expires). A 401 forgets the token and tries once more with a new one; a second 401
    /// is the endpoint's answer.
    async fn send_with_token(
        &self,
        webhook: &Webhook,
        request: OutboundRequest,
    ) -> Result<OutboundResponse, OutboundError> {
        let (Some(oauth2), timeout) = (&webhook.spec.oauth2, request.timeout) else {
            return self.http.send(request).await;
        };
        // Opened only when a token is asked for, not for every delivery.
        let secret = || async {
            let keys = self
                .vault
                .keyring()
                .await
                .map_err(|e| OutboundError::Token(format!("the keys did not load: {e}")))?;
            Ok(webhook
                .open_oauth2_secret(&keys)
                .map_err(|e| OutboundError::Token(e.to_string()))?
                .unwrap_or_default())
        };
        let bearer = |mut r: OutboundRequest, token: &str| {
            r.headers
                .push(("authorization".to_owned(), format!("Bearer {token}")));
            r
        };
        let token = self
            .tokens
            .token(&webhook.id, webhook.version, oauth2, secret, timeout)
            .await?;
        let first = self.http.send(bearer(request.clone(), &token)).await?;
        if first.status != 401 {
            return Ok(first);
        }
        tracing::info!("the endpoint refused the OAuth2 token (401); asking for a new one");
        self.tokens
            .forget(&webhook.id, webhook.version, &token)
            .await;
        let token = self
            .tokens
            .token(&webhook.id, webhook.version, oauth2, secret, timeout)
            .await?;
        self.http.send(bearer(request, &token)).await
    }

    /// The delivery's webhook: the cached copy if it is new enough, else read (and kept).
    async fn webhook(&self, delivery: &DeliveryMessage) -> Result<Option<Arc<Webhook>>, PortError> {
        let cached = || {
            self.webhooks
                .get(&delivery.webhook_id, delivery.webhook_version)
        };
        if let Some(webhook) = cached() {
            return Ok(Some(webhook));
        }
        // One read per webhook at a time; those who waited use what it read.
        let turn = self
            .webhooks
            .enabled()
            .then(|| self.webhooks.read_turn(&delivery.webhook_id));
        let _turn = match &turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        if let Some(webhook) = cached() {
            return Ok(Some(webhook));
        }
        let generation = self.webhooks.generation();
        let read = self.store.get(&delivery.webhook_id).await?.map(Arc::new);
        match &read {
            Some(webhook) => self.webhooks.put_read(webhook.clone(), generation),
            None => self.webhooks.forget(&delivery.webhook_id),
        }
        Ok(read)
    }

    /// A 2xx ended the webhook's failure run. A failed write only leaves an old run that
    /// the next 2xx ends; the delivery itself succeeded and is not repeated for it.
    async fn end_failure_run(&self, webhook: &Webhook) {
        match self.store.clear_failures(&webhook.id).await {
            Ok(()) => {
                self.webhooks.set_failures(&webhook.id, None);
                tracing::info!("delivered: the webhook's failure run ended")
            }
            Err(e) => tracing::warn!(error = %e, "the failure run could not be ended"),
        }
    }

    /// Counts a final failure in the webhook's run; disables it when the run is old and long
    /// enough. Bookkeeping only: a storage error is logged, and the message is not repeated
    /// for it (the next failure counts again).
    async fn count_failure(&self, webhook: &Webhook, now: OffsetDateTime, error: &str) {
        let run = match self.store.record_failure(&webhook.id, now, error).await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the failure could not be counted in the webhook's run");
                return;
            }
        };
        tracing::info!(failures = run.failures, since = %run.since, "failure counted in the webhook's run");
        self.webhooks.set_failures(&webhook.id, Some(run.clone()));
        if self.settings.disable.should_disable(&run, now) {
            self.webhooks.forget(&webhook.id);
            let disabled = self
                .lifecycle
                .disable(
                    webhook,
                    DisabledReason::Failing,
                    Some(error.to_owned()),
                    Some(&run),
                )
                .await;
            if let Err(e) = disabled {
                tracing::warn!(error = %e, "the failing webhook could not be disabled; the next failure tries again");
            }
        }
    }
}
