//! Background jobs over the event and attempt logs (recover a webhook's failed deliveries,
//! backfill past events into a webhook, purge an App's data): the job record the API answers with, its states, and
//! the chunk message that moves it on. A job runs in chunks of at most [`CHUNK`] items, each
//! one message on the events queue, so it survives a restart or a function timeout and
//! shares the queue's consumers with live traffic instead of taking them over.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::retention::Retention;
use crate::timestamp::rfc3339;
use crate::validation::{FieldError, ValidationErrors};
use crate::webhook::WebhookId;

/// How far ahead of this server's clock `until` may be (clocks differ a little).
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// Most items (deliveries requeued) one chunk handles.
pub const CHUNK: usize = 100;
/// The pause before the next chunk is received: a job takes at most one chunk per this
/// much time and consumer, so live events queued meanwhile go first.
pub const CHUNK_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a finished job stays readable (`GET /v1/jobs/{id}`) before the store lets it go:
/// DynamoDB's TTL, the embedded sweeper.
pub const FINISHED_KEPT: time::Duration = time::Duration::days(30);

/// A job's id: `job_` and a ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// A new id.
    pub fn generate() -> Self {
        Self(format!("job_{}", ulid::Ulid::new()))
    }

    /// `text`, if it is a job id.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = text
            .strip_prefix("job_")
            .is_some_and(|u| ulid::Ulid::from_string(u).is_ok());
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("{text} is not a job id (job_ and a ULID)"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Redeliver a webhook's deliveries whose last attempt failed for good.
    Recover,
    /// Send a webhook the past events it would have matched.
    Backfill,
    /// Delete an App's data: its events, attempts, queued deliveries and webhooks.
    Purge,
}

/// What at most one unfinished job may hold at a time: a webhook (recover, backfill) or an
/// App (purge).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobLock {
    /// A webhook.
    Webhook(WebhookId),
    /// An App.
    App(String),
}

impl std::fmt::Display for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook(id) => write!(f, "webhook {id}"),
            Self::App(app) => write!(f, "App {app}"),
        }
    }
}

impl JobLock {
    /// The key a store indexes it by: the webhook id, or `app:<id>`.
    pub fn key(&self) -> String {
        match self {
            Self::Webhook(id) => id.to_string(),
            Self::App(app) => format!("app:{app}"),
        }
    }
}

/// Where a purge stands: what it found and changed so far, kept in its job so a resumed
/// purge finishes what it started (a webhook it stripped names the App no more).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeProgress {
    /// Webhooks that named only the App: deleted with everything recorded for them.
    #[serde(default)]
    pub deleted: Vec<WebhookId>,
    /// Webhooks that also named other Apps: the App's URNs removed, its attempts deleted.
    #[serde(default)]
    pub stripped: Vec<WebhookId>,
    /// Events deleted.
    #[serde(default)]
    pub events: u64,
    /// Attempts deleted.
    #[serde(default)]
    pub attempts: u64,
    /// Queued messages deleted (the embedded queues; SQS messages cannot be picked out, so
    /// deliverers drop them instead).
    #[serde(default)]
    pub messages: u64,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Created; its first chunk is queued.
    Queued,
    /// At least one chunk ran; more to come.
    Running,
    /// Every item was handled.
    Done,
    /// It could not go on (`error` says why).
    Failed,
    /// Cancelled by a caller; chunks already handled stay done.
    Cancelled,
}

impl JobState {
    /// Done, failed or cancelled: nothing more happens.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// The state's name, as the API and the stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A job, as stored and as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The webhook it works on (recover, backfill): at most one unfinished job per webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<WebhookId>,
    /// The App it works on (purge): at most one unfinished job per App.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The `sub` of the caller who started it.
    pub created_by: String,
    /// The window's start.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The window's end.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Where it stands.
    pub state: JobState,
    /// Items handled so far.
    pub done: u64,
    /// Items it matched when it was created.
    pub total: u64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its first chunk ran.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub started_at: Option<OffsetDateTime>,
    /// When it reached a final state.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished_at: Option<OffsetDateTime>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the next chunk starts (an attempt-log cursor); `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The number of the next chunk: a chunk message of another number is a stale copy.
    pub next_chunk: u64,
    /// The Apps a backfill reads, in order (those the caller could edit and whose grant to
    /// the webhook's owner stood when it started).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// A purge's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeProgress>,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
}

impl Job {
    /// A queued job of `kind` on `webhook_id` over `[since, until]`, matching `total` items.
    pub fn new(
        kind: JobKind,
        webhook_id: WebhookId,
        created_by: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        total: u64,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            webhook_id: Some(webhook_id),
            ..Self::blank(kind, created_by, since, until, total, now)
        }
    }

    /// A queued purge of App `app_id`, started by `created_by` at `now`; `total` is what it
    /// knows of so far (the App's webhooks), and grows as it finds events and attempts.
    pub fn purge(app_id: &str, created_by: &str, total: u64, now: OffsetDateTime) -> Self {
        Self {
            app_id: Some(app_id.to_owned()),
            purge: Some(PurgeProgress::default()),
            ..Self::blank(JobKind::Purge, created_by, now, now, total, now)
        }
    }

    fn blank(
        kind: JobKind,
        created_by: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        total: u64,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: JobId::generate(),
            kind,
            webhook_id: None,
            app_id: None,
            created_by: created_by.to_owned(),
            since,
            until,
            state: JobState::Queued,
            done: 0,
            total,
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            cursor: None,
            next_chunk: 0,
            apps: Vec::new(),
            purge: None,
            version: 1,
        }
    }

    /// What the store locks while the job is unfinished.
    pub fn lock(&self) -> JobLock {
        match (&self.webhook_id, &self.app_id) {
            (Some(webhook), _) => JobLock::Webhook(webhook.clone()),
            (None, Some(app)) => JobLock::App(app.clone()),
            // Neither (a document written by hand): a lock of its own.
            (None, None) => JobLock::App(format!("#{}", self.id)),
        }
    }

    /// Ends the job in `state` (with `error` when it failed) at `now`.
    pub fn finish(&mut self, state: JobState, error: Option<String>, now: OffsetDateTime) {
        self.state = state;
        self.error = error;
        self.finished_at = Some(now);
        self.cursor = None;
    }
}

/// The events-queue message that runs chunk `chunk` of job `job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobChunk {
    /// The job.
    pub job: JobId,
    /// Which chunk.
    pub chunk: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkEnvelope {
    #[serde(rename = "hooklineJobChunk")]
    chunk: JobChunk,
}

impl JobChunk {
    /// The message body: `{"hooklineJobChunk": {"job": ..., "chunk": n}}`.
    pub fn to_body(&self) -> String {
        serde_json::json!({"hooklineJobChunk": self}).to_string()
    }

    /// The chunk a message body carries; `None` for any other message (an event, a grant).
    pub fn from_body(body: &[u8]) -> Option<Self> {
        // Cheap test first: events are the hot path.
        if !body.starts_with(b"{\"hooklineJobChunk\"") {
            return None;
        }
        serde_json::from_slice::<ChunkEnvelope>(body)
            .ok()
            .map(|e| e.chunk)
    }
}

/// The window of a recover: both ends RFC 3339, `since` not after `until`, nothing in the
/// future, nothing before the retention horizon; each refusal names its field.
pub fn window(
    since_text: &str,
    until_text: Option<&str>,
    now: OffsetDateTime,
    retention: Retention,
) -> Result<(OffsetDateTime, OffsetDateTime), ValidationErrors> {
    let invalid =
        |field: &str, why: String| ValidationErrors::new(vec![FieldError::new(field, why)]);
    let parse = |field: &str, text: &str| {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
            invalid(
                field,
                format!("\"{text}\" is not an RFC 3339 time (2026-12-03T10:00:00Z)"),
            )
        })
    };
    let since = parse("since", since_text)?;
    let until = match until_text {
        Some(text) => parse("until", text)?,
        None => now,
    };
    if since > now {
        return Err(invalid("since", format!("{since_text} is in the future")));
    }
    if until > now + CLOCK_SKEW {
        return Err(invalid(
            "until",
            format!("{} is in the future", until_text.unwrap_or_default()),
        ));
    }
    if since > until {
        return Err(invalid(
            "since",
            format!("{since_text} is after until ({})", rfc3339(until)),
        ));
    }
    let horizon = retention.horizon(now);
    if since < horizon {
        return Err(invalid(
            "since",
            format!(
                "{since_text} is before the retention horizon {} (events and attempts are kept {})",
                rfc3339(horizon),
                retention.describe()
            ),
        ));
    }
    Ok((since, until.min(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ValidationErrors) -> String {
        e.errors()[0].field.clone()
    }

    #[test]
    fn bad_windows_are_refused_naming_the_field() {
        let now = OffsetDateTime::parse(
            "2026-12-04T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .expect("now");
        let r = Retention::default();
        let ok = window("2026-12-04T06:00:00Z", None, now, r).expect("ok");
        assert_eq!(ok.1, now);
        for (since, until, field) in [
            ("yesterday", None, "since"),
            ("2026-12-04T06:00:00Z", Some("later"), "until"),
            ("2026-12-05T06:00:00Z", None, "since"),
            (
                "2026-12-04T06:00:00Z",
                Some("2026-12-05T00:00:00Z"),
                "until",
            ),
            (
                "2026-12-04T08:00:00Z",
                Some("2026-12-04T07:00:00Z"),
                "since",
            ),
            ("2026-10-01T00:00:00Z", None, "since"),
        ] {
            let e = window(since, until, now, r).expect_err("refused");
            assert_eq!(field_of(e), field, "{since} {until:?}");
        }
    }

    #[test]
    fn a_chunk_message_round_trips_and_nothing_else_reads_as_one() {
        let chunk = JobChunk {
            job: JobId::generate(),
            chunk: 3,
        };
        assert_eq!(JobChunk::from_body(chunk.to_body().as_bytes()), Some(chunk));
        assert_eq!(
            JobChunk::from_body(br#"{"type":"ticket.created","urn":"urn:allthings:app:A1:x"}"#),
            None
        );
        assert_eq!(
            JobChunk::from_body(br#"{"hooklineJobChunk":{"job":"nope","chunk":1}}"#),
            None
        );
    }

    #[test]
    fn job_ids_are_job_and_a_ulid() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(id.as_str()), Ok(id));
        assert!(JobId::parse("job_x").is_err());
        assert!(JobId::parse("wh_01JDK7Z3Q8W6V0N4B2C9D5E7F0").is_err());
    }

    #[test]
    fn states_say_when_they_are_final() {
        assert!(!JobState::Queued.is_final());
        assert!(!JobState::Running.is_final());
        assert!(JobState::Done.is_final() && JobState::Failed.is_final());
        assert!(JobState::Cancelled.is_final());
    }
}
