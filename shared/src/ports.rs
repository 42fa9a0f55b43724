//! The ports: small async traits for storage, queues and outbound HTTP, and the [`Ports`]
//! bundle a composition hands to the handlers. Each has a DynamoDB/SQS adapter and a SQLite
//! adapter (`crate::adapters`), and one conformance suite runs against both.
//!
//! The traits speak domain types only, so the api, ingest and deliver libraries never see an
//! SDK type, and `hookline serve` can swap every adapter for an embedded one.
//!
//! **Erase walks** (an App purge, one chunk at a time): `erase_app` and `AttemptLog::erase`
//! look at most `limit` stored items from `cursor`, delete those that belong to the App, and
//! return how many went with the cursor to go on from (`None`: the walk is done). A chunk that
//! deletes nothing may still move the cursor; running a chunk twice deletes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::delivery::{Attempt, AttemptStatus, DeliveryId, DeliveryMessage, ReceiptHandle};
use crate::destination::{AwsDestination, DestinationMessage, DestinationRefused};
use crate::event::{Event, EventId};
use crate::job::{Job, JobChunk, JobId, JobLock};
use crate::outbound::{OutboundError, OutboundRequest, OutboundResponse};
use crate::rules::RateLimit;
use crate::sealed::Keyring;
use crate::urn::Namespace;
use crate::webhook::{FailureRun, Route, Webhook, WebhookId};

/// A storage or queue failure, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The item already exists (create with a taken id).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The item changed since it was read (`If-Match` / conditional write failed).
    #[error("version conflict: expected version {expected}")]
    VersionConflict {
        /// The version the caller expected.
        expected: u64,
    },
    /// The item is not there.
    #[error("{0} not found")]
    NotFound(String),
    /// A backend error worth retrying (throttling, timeouts, unavailable).
    #[error("storage or queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be read back into the domain (a bug or a manual edit).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An opaque pagination cursor handed back to the caller as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// One page of a listing and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched items: the extra one only tells that more exist,
    /// and the last item kept names the cursor of the next page.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|item| Cursor(cursor_of(item)))
        } else {
            None
        };
        Self { items, next }
    }
}

/// Webhooks and their per-App route items, changed together.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// A count this store moves after every webhook write it commits (create, update,
    /// delete, failure runs), if it sees them all (the embedded store, written by one
    /// process); deliverers then keep webhooks until the next write. `None` by default.
    fn change_counter(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
    /// Stores a new webhook and its route items atomically.
    async fn create(&self, webhook: &Webhook) -> Result<(), PortError>;
    /// Reads one webhook.
    async fn get(&self, id: &WebhookId) -> Result<Option<Webhook>, PortError>;
    /// Replaces a webhook (and its route items) if its stored version is `expected_version`.
    async fn update(&self, webhook: &Webhook, expected_version: u64) -> Result<(), PortError>;
    /// Deletes a webhook and its route items if its stored version is `expected_version`.
    async fn delete(&self, id: &WebhookId, expected_version: u64) -> Result<(), PortError>;
    /// Webhooks naming `app_id`, oldest first; stable under concurrent inserts.
    async fn list_for_app(
        &self,
        app_id: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Webhook>, PortError>;
    /// Every route item of `app_id`: what fan-out matches an event against.
    async fn routes_for_app(&self, app_id: &str) -> Result<Vec<Route>, PortError>;
    /// A number that changes whenever a webhook naming `app_id` is created, changed or
    /// deleted (0 for an App never written): a cache of the App's routes is current while
    /// it reads the same number. Read before the routes, so a cache is never newer than its
    /// number says.
    async fn routes_version(&self, app_id: &str) -> Result<u64, PortError>;
    /// Counts one failed delivery in the webhook's failure run, starting the run at `at` if
    /// none is going on; atomic, and leaves the webhook's version alone. `None` when the
    /// webhook is gone.
    async fn record_failure(
        &self,
        id: &WebhookId,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<Option<FailureRun>, PortError>;
    /// Ends the webhook's failure run, if one is going on.
    async fn clear_failures(&self, id: &WebhookId) -> Result<(), PortError>;
    /// Every webhook's id (key rotation walks them all: rare, a full scan).
    async fn ids(&self) -> Result<Vec<WebhookId>, PortError>;
    /// The Apps that have webhooks, sorted (the console's suggestions to a caller holding
    /// `edit-app:*`). A scan on DynamoDB: for an operator's occasional look, never a hot path.
    async fn app_ids(&self) -> Result<Vec<String>, PortError>;
    /// Deletes what the store keeps of App `app_id` beside its webhooks (its route version),
    /// once no webhook names it (an App purge's last step). A version written later starts
    /// where no cache of the old one can mistake it.
    async fn forget_app(&self, app_id: &str) -> Result<(), PortError>;
    /// The webhooks `owner` created that name `app_id` (for grant changes: rare, so a walk
    /// of the App's webhooks rather than an index of its own).
    async fn owned_in_app(&self, owner: &str, app_id: &str) -> Result<Vec<Webhook>, PortError> {
        let mut owned = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_for_app(app_id, cursor.as_ref(), 100).await?;
            owned.extend(page.items.into_iter().filter(|w| w.owner == owner));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(owned),
            }
        }
    }
}

/// A grant the platform revoked: `sub` may not manage `app_id`'s webhooks, and its webhooks
/// receive nothing from it, until the grant is restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedGrant {
    /// The client.
    pub sub: String,
    /// The App.
    pub app_id: String,
    /// When it was revoked.
    pub since: OffsetDateTime,
}

/// Revoked grants (`PK=GRANT#<sub> SK=APP#<appId>` in DynamoDB).
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Records a revocation; revoking twice keeps the first time.
    async fn revoke(&self, sub: &str, app_id: &str, at: OffsetDateTime) -> Result<(), PortError>;
    /// Removes a revocation, if there is one.
    async fn restore(&self, sub: &str, app_id: &str) -> Result<(), PortError>;
    /// The grants revoked for `sub`.
    async fn revoked(&self, sub: &str) -> Result<Vec<RevokedGrant>, PortError>;
}

/// Where an event stands in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClaim {
    /// First time seen: fan it out, then call [`EventLog::mark_fanned_out`].
    New,
    /// Seen before, its fan-out did not finish and its claim lapsed: this caller takes it
    /// over and fans it out again (the repeated delivery ids make duplicates recognisable).
    Unfinished,
    /// Another consumer claimed it moments ago and may still be fanning it out: retry later.
    InProgress,
    /// Seen and fanned out: drop this copy.
    Done,
}

/// The event log: dedupe by event id, and the payload kept for redelivery.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Records `event` unless its id is known, and says where it stands; kept until
    /// `expires_at`. A `New` or `Unfinished` claim is the caller's for `lease`.
    async fn claim(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        lease: Duration,
    ) -> Result<EventClaim, PortError>;
    /// Claims `event` for the queue message `taken_by` in the event's only write, where the
    /// log supports it (DynamoDB): no mark follows and nothing is released. The same
    /// message's retry finds the claim its own (`Unfinished`) and fans out again; any other
    /// message carrying the id is the duplicate publish it is (`Done`). `None` where the log
    /// marks separately: call [`Self::claim`], then [`Self::mark_fanned_out`].
    async fn claim_for_message(
        &self,
        _event: &Event,
        _expires_at: OffsetDateTime,
        _taken_by: &str,
    ) -> Result<Option<EventClaim>, PortError> {
        Ok(None)
    }
    /// Gives up a claim after a failed fan-out, so the retry need not wait out the lease.
    async fn release(&self, id: &EventId) -> Result<(), PortError>;
    /// Marks the event's fan-out complete, so later copies are dropped.
    async fn mark_fanned_out(&self, id: &EventId) -> Result<(), PortError>;
    /// Reads a logged event, for redelivery.
    async fn get(&self, id: &EventId) -> Result<Option<Event>, PortError>;
    /// The unexpired events of App `app_id` received in `[since, until)`, oldest first, a
    /// page of at most `limit` at a time (backfill, App purges).
    async fn list_for_app(
        &self,
        app_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, PortError>;
    /// Deletes these events (an App purge); absent ones are skipped. Returns how many went.
    async fn erase(&self, ids: &[EventId]) -> Result<u64, PortError>;
}

/// A store holding both the event log and the delivery queue, which can take an event's
/// claim, its delivery messages and its mark in one commit (the embedded store). Fan-out then
/// costs one write, and no crash leaves an event claimed but half fanned out.
#[async_trait]
pub trait FanOutCommit: Send + Sync {
    /// Claims `event` as [`EventLog::claim`] does; when the claim is `New` or `Unfinished`,
    /// also sends `messages` and marks the event fanned out, all in one commit. On `Done` or
    /// `InProgress` nothing is written. Returns the claim.
    async fn commit_fan_out(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        lease: Duration,
        messages: &[DeliveryMessage],
    ) -> Result<EventClaim, PortError>;
}

/// An event as the event log lists it: the event and when Hookline received it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// The event.
    pub event: Event,
    /// When the event log recorded it.
    pub received_at: OffsetDateTime,
}

impl LoggedEvent {
    /// The listing's position of this event: its receipt time (ms) and id, which sort as
    /// the listing does.
    pub fn position(&self) -> String {
        format!(
            "{:013}#{}",
            crate::timestamp::unix_ms(self.received_at).max(0),
            self.event.id
        )
    }

    /// Splits a [`Self::position`] into its receipt time (Unix ms) and event id.
    pub fn parse_position(text: &str) -> Result<(i64, &str), PortError> {
        text.split_once('#')
            .and_then(|(ms, id)| Some((ms.parse().ok()?, id)))
            .ok_or_else(|| PortError::Corrupt(format!("event listing position {text}")))
    }
}

/// The `events` queue, as the api's intake sees it.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Enqueues one validated event for fan-out.
    async fn send_event(&self, event: &Event) -> Result<(), PortError>;
    /// Enqueues the message that runs one chunk of a background job, received no sooner
    /// than `delay` from now.
    async fn send_job_chunk(&self, chunk: &JobChunk, delay: Duration) -> Result<(), PortError>;
}

/// The `deliveries` queues (unordered, and ordered by group), as ingest and deliver see
/// them, with their dead-letter queues.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Enqueues messages; returns the ones that were not accepted (to retry or fail the event).
    async fn send_deliveries(
        &self,
        messages: &[DeliveryMessage],
    ) -> Result<Vec<DeliveryId>, PortError>;
    /// Hides a received message of `delivery` for `delay` (backoff); it comes back with its
    /// receive count + 1.
    async fn retry_later(
        &self,
        delivery: &DeliveryMessage,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError>;
    /// Sends `delivery` again, visible after `delay` (an unordered delivery waiting for its
    /// rate-limit slot); the received copy is then acknowledged.
    async fn send_later(
        &self,
        delivery: &DeliveryMessage,
        delay: Duration,
    ) -> Result<(), PortError>;
    /// Moves `delivery` to the dead-letter queue with `reason` (its retries are exhausted);
    /// the received copy is then acknowledged.
    async fn dead_letter(&self, delivery: &DeliveryMessage, reason: &str) -> Result<(), PortError>;
    /// Deletes the queued messages (events, deliveries, their dead letters) of App
    /// `app_id`'s events or to one of `webhooks`: an erase walk (module docs). Queues that
    /// cannot pick messages out (SQS) delete none; their deliverers drop what no webhook may
    /// receive.
    async fn erase_app(
        &self,
        _app_id: &str,
        _webhooks: &[WebhookId],
        _cursor: Option<&Cursor>,
        _limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        Ok((0, None))
    }
}

/// Where a message that can never be processed goes, with the reason (`events-dlq`).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Stores the raw body and why it was refused; the original message is then deleted.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError>;
}

/// The attempt log (`PK=WH#<id> SK=DL#<ulid>` in DynamoDB).
#[async_trait]
pub trait AttemptLog: Send + Sync {
    /// Records one attempt, kept until `expires_at`.
    async fn record(&self, attempt: &Attempt, expires_at: OffsetDateTime) -> Result<(), PortError>;
    /// Records a batch's attempts (one transaction where the store has them).
    async fn record_many(
        &self,
        attempts: &[Attempt],
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError> {
        for attempt in attempts {
            self.record(attempt, expires_at).await?;
        }
        Ok(())
    }
    /// The event of a delivery of this webhook that has attempts on record, and its highest
    /// attempt number (for redelivery).
    async fn last_attempt(
        &self,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Option<(EventId, u32)>, PortError>;
    /// A webhook's attempts, newest first, optionally only those with `status`.
    async fn list(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Attempt>, PortError>;
    /// How many attempts [`AttemptLog::list`] would walk through, in all its pages.
    async fn count(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
    ) -> Result<u64, PortError>;
    /// Deletes a webhook's attempts (of App `app`'s events only, when given): an erase walk
    /// (module docs).
    async fn erase(
        &self,
        webhook: &WebhookId,
        app: Option<&str>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError>;
}

/// Background jobs ([`Job`]): at most one unfinished job per [`JobLock`], and every write
/// conditional on the version read, so two consumers of one chunk cannot both move it on.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job; [`PortError::AlreadyExists`] naming the unfinished job holding its
    /// lock, if one does.
    async fn create(&self, job: &Job) -> Result<(), PortError>;
    /// Reads a job.
    async fn get(&self, id: &JobId) -> Result<Option<Job>, PortError>;
    /// Replaces a job whose stored version is `expected_version` with `job` (whose version
    /// the caller has moved on); [`PortError::VersionConflict`] otherwise. A final state
    /// frees its lock for the next job.
    async fn update(&self, job: &Job, expected_version: u64) -> Result<(), PortError>;
    /// The unfinished job holding `lock`, if any.
    async fn active_for(&self, lock: &JobLock) -> Result<Option<JobId>, PortError>;
}

/// Spaces a webhook's deliveries to its rate limit: every delivery reserves a start slot,
/// one interval (1/N s) after the previous one reserved for that webhook, and never in the
/// past.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Reserves the next start slot for a delivery to `webhook` limited to `limit`.
    async fn reserve(
        &self,
        webhook: &WebhookId,
        limit: RateLimit,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, PortError>;
    /// Forgets a deleted webhook's slots (an App purge); a no-op where they only live in
    /// memory.
    async fn forget(&self, _webhook: &WebhookId) -> Result<(), PortError> {
        Ok(())
    }
}

/// Sends requests to endpoints, enforcing the target guard on every resolved address.
#[async_trait]
pub trait HttpSender: Send + Sync {
    /// Sends one request; redirects are never followed.
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError>;
}

/// Sends to AWS destinations through the integrator's role (`adapters::aws::destinations`);
/// the adapter bounds each call to AWS with its own timeout.
#[async_trait]
pub trait DestinationSender: Send + Sync {
    /// Sends one message. The service's answer comes back as an HTTP status, so the retry
    /// policy treats it as it treats an endpoint's: 200 sent, 429 throttled, 403 access
    /// denied (the role or the resource), 404 no such resource, the service's own 5xx, 400
    /// any other refusal; the body says the service's error code and message.
    async fn send(
        &self,
        destination: &AwsDestination,
        message: &DestinationMessage,
    ) -> Result<OutboundResponse, OutboundError>;

    /// The check on save: assume the role, make the cheapest read that proves access, then
    /// send `test`. The error names the step that was refused.
    async fn check(
        &self,
        destination: &AwsDestination,
        test: &DestinationMessage,
    ) -> Result<(), DestinationRefused>;
}

/// Where the keys that seal credentials come from: a key file or `HOOKLINE_MASTER_KEY`
/// (embedded), KMS-wrapped data keys (AWS). Loaded once and cached by the adapter.
#[async_trait]
pub trait Vault: Send + Sync {
    /// The deployment's keys, the active one first.
    async fn keyring(&self) -> Result<Arc<Keyring>, PortError>;
    /// Reads the keys again (a value names a key this process has not loaded: another
    /// process rotated). Adapters may answer from their cache when asked too often.
    async fn refresh(&self) -> Result<Arc<Keyring>, PortError> {
        self.keyring().await
    }
}

/// A vault of keys fixed for the process's life (embedded store, tests).
pub struct FixedVault(pub Arc<Keyring>);

#[async_trait]
impl Vault for FixedVault {
    async fn keyring(&self) -> Result<Arc<Keyring>, PortError> {
        Ok(self.0.clone())
    }
}

/// Every port a composition provides, wired once per deployment (`crate::adapters::aws` and
/// `crate::adapters::sqlite` build it) and handed to the api, ingest and deliver handlers.
#[derive(Clone)]
pub struct Ports {
    /// Webhooks and their route items.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Revoked grants.
    pub grants: Arc<dyn GrantStore>,
    /// The event log (dedupe, payloads for redelivery).
    pub events: Arc<dyn EventLog>,
    /// The attempt log.
    pub attempts: Arc<dyn AttemptLog>,
    /// Background jobs.
    pub jobs: Arc<dyn JobStore>,
    /// The `events` queue (intake, operational events).
    pub event_queue: Arc<dyn EventQueue>,
    /// The `deliveries` queues.
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// One-commit fan-out, where the store holds the event log and the deliveries together.
    pub fan_out_commit: Option<Arc<dyn FanOutCommit>>,
    /// Rate-limit slots shared by every deliverer of the deployment.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// The keys that seal credentials at rest.
    pub vault: Arc<dyn Vault>,
    /// Sends to AWS destinations; `None`: this composition has none (webhooks cannot name
    /// one, and a delivery to one fails).
    pub destinations: Option<Arc<dyn DestinationSender>>,
    /// The URN namespace of the deployment.
    pub namespace: Namespace,
}
