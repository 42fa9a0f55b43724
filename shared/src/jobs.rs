//! Background jobs over the ports: recover (redeliver every delivery of a webhook whose last
//! attempt failed for good in a window), backfill (send a webhook the logged events of a
//! window it would have matched) and purge (delete an App's data). A job is started here, then moved on one chunk at a
//! time by [`Jobs::run_chunk`], which the events-queue consumer (ingest) calls for each
//! [`JobChunk`] message; each chunk queues the next before it records its progress, so a
//! crash between the two repeats a chunk (at-least-once, like every delivery) and never
//! strands a job.

use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::delivery::{Attempt, AttemptStatus, DeliveryId, DeliveryMessage};
use crate::event::Event;
use crate::job::{
    Job, JobChunk, JobId, JobKind, JobLock, JobState, PurgeProgress, CHUNK, CHUNK_PAUSE,
};
use crate::lifecycle::Lifecycle;
use crate::ports::{
    AttemptLog, Cursor, DeliveryQueue, EventLog, EventQueue, JobStore, PortError, Ports,
    RateLimiter, WebhookStore,
};
use crate::webhook::{Webhook, WebhookId};

/// Most attempts a dry run reads to count what a recover would redeliver.
pub const MAX_COUNT_ATTEMPTS: usize = 100_000;
/// Most items (events, attempts, queued messages) one chunk of a purge walks: a purge only
/// deletes, so its chunks are larger than those that send (an App of a million events goes in
/// about a thousand chunks, one a second).
pub const PURGE_CHUNK: usize = 1_000;
/// Most events a backfill counts before it starts (a larger window is sent whole; its
/// `total` then says at least this many).
pub const MAX_COUNT_EVENTS: usize = 1_000_000;

/// Would `webhook` have been sent `event`: its event types, URN patterns and payload filter
/// (whether it is enabled aside).
pub fn wanted(webhook: &Webhook, event: &Event) -> bool {
    webhook.spec.wants(&event.event_type, &event.urn)
        && webhook
            .spec
            .filter
            .as_ref()
            .is_none_or(|f| f.matches(event))
}

/// Did this attempt end its delivery for good, unsuccessfully (what recover redelivers)?
pub fn failed_for_good(status: AttemptStatus) -> bool {
    matches!(
        status,
        AttemptStatus::Failed | AttemptStatus::Exhausted | AttemptStatus::Gone
    )
}

/// What a recover matched, and the job sending it (none for a dry run or when nothing
/// matched).
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Deliveries whose last attempt failed for good inside the window.
    pub matched: u64,
    /// The job redelivering them.
    pub job: Option<Job>,
}

/// A disabled webhook would skip what a job sends it: refused up front.
fn refuse_disabled(webhook: &Webhook) -> Result<(), JobError> {
    match webhook.state.disabled_reason() {
        Some(reason) => Err(JobError::Disabled(webhook.id.clone(), reason)),
        None => Ok(()),
    }
}

/// Starts, cancels and runs background jobs.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    attempts: Arc<dyn AttemptLog>,
    events: Arc<dyn EventLog>,
    webhooks: Arc<dyn WebhookStore>,
    deliveries: Arc<dyn DeliveryQueue>,
    queue: Arc<dyn EventQueue>,
    rate_limiter: Arc<dyn RateLimiter>,
    lifecycle: Lifecycle,
}

/// Why a job could not be started or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The webhook (or App) already has an unfinished job.
    #[error("{lock} already has an unfinished job, {job}")]
    Busy {
        /// The webhook or App.
        lock: JobLock,
        /// Its unfinished job.
        job: String,
    },
    /// The webhook is disabled: nothing would be delivered.
    #[error("webhook {0} is disabled ({1}): enable it first")]
    Disabled(WebhookId, &'static str),
    /// The job has ended already.
    #[error("job {0} has ended already ({1})")]
    Ended(JobId, &'static str),
    /// The job is not there.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// Storage or a queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl Jobs {
    /// Jobs over a composition's ports.
    pub fn from_ports(ports: &Ports) -> Self {
        Self {
            store: ports.jobs.clone(),
            attempts: ports.attempts.clone(),
            events: ports.events.clone(),
            webhooks: ports.webhooks.clone(),
            deliveries: ports.deliveries.clone(),
            queue: ports.event_queue.clone(),
            rate_limiter: ports.rate_limiter.clone(),
            lifecycle: Lifecycle::from_ports(ports),
        }
    }

    /// How many deliveries of `webhook` a recover of `[since, until]` would redeliver: those
    /// whose newest attempt failed for good inside the window (read newest first, at most
    /// [`MAX_COUNT_ATTEMPTS`] attempts).
    pub async fn count_recoverable(
        &self,
        webhook: &WebhookId,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64, PortError> {
        let mut seen = HashSet::new();
        let mut matched = 0;
        let mut cursor: Option<Cursor> = None;
        let mut read = 0;
        loop {
            let page = self
                .attempts
                .list(webhook, None, cursor.as_ref(), 1_000)
                .await?;
            read += page.items.len();
            let mut older = false;
            for a in &page.items {
                older |= a.at < since;
                // Newest first: the first attempt seen of a delivery is its last.
                if seen.insert(a.delivery_id.clone())
                    && failed_for_good(a.status)
                    && a.at >= since
                    && a.at <= until
                {
                    matched += 1;
                }
            }
            match page.next {
                Some(next) if !older && read < MAX_COUNT_ATTEMPTS => cursor = Some(next),
                _ => return Ok(matched),
            }
        }
    }

    /// Counts the deliveries of `webhook` whose last attempt failed for good in
    /// `[since, until]` and, unless `dry_run` or nothing matched, starts a job (on behalf of
    /// `created_by`) redelivering them. A disabled webhook is refused: it would skip them.
    pub async fn recover(
        &self,
        webhook: &Webhook,
        since: OffsetDateTime,
        until: OffsetDateTime,
        dry_run: bool,
        created_by: &str,
    ) -> Result<Recovery, JobError> {
        refuse_disabled(webhook)?;
        let matched = self.count_recoverable(&webhook.id, since, until).await?;
        let job = Job::new(
            JobKind::Recover,
            webhook.id.clone(),
            created_by,
            since,
            until,
            matched,
            OffsetDateTime::now_utc(),
        );
        self.start_unless(dry_run, job).await
    }

    /// How many logged events of `apps` received in `[since, until]` `webhook` would have
    /// been sent (at most [`MAX_COUNT_EVENTS`] read).
    pub async fn count_backfill(
        &self,
        webhook: &Webhook,
        apps: &[String],
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64, PortError> {
        let (mut matched, mut read) = (0, 0);
        for app in apps {
            let mut cursor: Option<Cursor> = None;
            loop {
                let page = self
                    .events
                    .list_for_app(app, since, until, cursor.as_ref(), 1_000)
                    .await?;
                read += page.items.len();
                matched += page
                    .items
                    .iter()
                    .filter(|e| wanted(webhook, &e.event))
                    .count() as u64;
                match page.next {
                    Some(next) if read < MAX_COUNT_EVENTS => cursor = Some(next),
                    _ => break,
                }
            }
        }
        Ok(matched)
    }

    /// Counts the events of `apps` in `[since, until]` that `webhook` would have been sent
    /// and, unless `dry_run` or nothing matched, starts a job (on behalf of `created_by`)
    /// sending them, oldest first per App. A disabled webhook is refused.
    pub async fn backfill(
        &self,
        webhook: &Webhook,
        apps: Vec<String>,
        since: OffsetDateTime,
        until: OffsetDateTime,
        dry_run: bool,
        created_by: &str,
    ) -> Result<Recovery, JobError> {
        refuse_disabled(webhook)?;
        let matched = self.count_backfill(webhook, &apps, since, until).await?;
        let mut job = Job::new(
            JobKind::Backfill,
            webhook.id.clone(),
            created_by,
            since,
            until,
            matched,
            OffsetDateTime::now_utc(),
        );
        job.apps = apps;
        self.start_unless(dry_run, job).await
    }

    /// Starts `job` (its `total` counted), unless this is a dry run or nothing matched.
    async fn start_unless(&self, dry_run: bool, job: Job) -> Result<Recovery, JobError> {
        let matched = job.total;
        if dry_run || matched == 0 {
            return Ok(Recovery { matched, job: None });
        }
        self.start(&job).await?;
        Ok(Recovery {
            matched,
            job: Some(job),
        })
    }

    /// Stores `job` and queues its first chunk; [`JobError::Busy`] when its webhook has an
    /// unfinished job.
    pub async fn start(&self, job: &Job) -> Result<(), JobError> {
        match self.store.create(job).await {
            Ok(()) => {}
            Err(PortError::AlreadyExists(other)) => {
                return Err(JobError::Busy {
                    lock: job.lock(),
                    job: other,
                })
            }
            Err(e) => return Err(e.into()),
        }
        let first = JobChunk {
            job: job.id.clone(),
            chunk: 0,
        };
        if let Err(e) = self
            .queue
            .send_job_chunk(&first, std::time::Duration::ZERO)
            .await
        {
            // Not left queued with nothing to run it, holding its webhook.
            let mut failed = job.clone();
            failed.finish(
                JobState::Failed,
                Some(format!("its first chunk could not be queued: {e}")),
                OffsetDateTime::now_utc(),
            );
            failed.version += 1;
            if let Err(again) = self.store.update(&failed, job.version).await {
                tracing::error!(job_id = %job.id, error = %again, "a job whose first chunk could not be queued could not be marked failed");
            }
            return Err(e.into());
        }
        tracing::info!(job_id = %job.id, lock = %job.lock(), kind = ?job.kind, total = job.total, "job started");
        Ok(())
    }

    /// Reads a job.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>, PortError> {
        self.store.get(id).await
    }

    /// Cancels an unfinished job: chunks not yet run are not run (one already running
    /// finishes).
    pub async fn cancel(&self, id: &JobId) -> Result<Job, JobError> {
        for _ in 0..3 {
            let Some(mut job) = self.store.get(id).await? else {
                return Err(JobError::NotFound(id.clone()));
            };
            if job.state.is_final() {
                return Err(JobError::Ended(id.clone(), job.state.as_str()));
            }
            let expected = job.version;
            job.finish(JobState::Cancelled, None, OffsetDateTime::now_utc());
            job.version += 1;
            match self.store.update(&job, expected).await {
                Ok(()) => {
                    tracing::info!(job_id = %id, done = job.done, total = job.total, "job cancelled");
                    return Ok(job);
                }
                // A chunk moved it meanwhile: read it again.
                Err(PortError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(JobError::Port(PortError::VersionConflict { expected: 0 }))
    }

    /// Runs one chunk of a job. A chunk of a job that ended, or a copy of a chunk that ran
    /// already, does nothing. Errors are worth a retry of the message.
    pub async fn run_chunk(&self, chunk: &JobChunk) -> Result<(), PortError> {
        let Some(mut job) = self.store.get(&chunk.job).await? else {
            tracing::warn!(job_id = %chunk.job, "a chunk of an unknown job, dropped");
            return Ok(());
        };
        if job.state.is_final() || chunk.chunk != job.next_chunk {
            tracing::debug!(job_id = %job.id, chunk = chunk.chunk, next = job.next_chunk, state = job.state.as_str(), "a stale job chunk, dropped");
            return Ok(());
        }
        let span = tracing::info_span!("job_chunk", job_id = %job.id, lock = %job.lock(), chunk = chunk.chunk);
        let _entered = span.enter();
        let expected = job.version;
        let now = OffsetDateTime::now_utc();
        job.version += 1;
        job.started_at.get_or_insert(now);
        let (requeued, next) = match (&job.kind, job.webhook_id.clone()) {
            (JobKind::Purge, _) => match self.purge_chunk(&mut job, expected).await? {
                Some(step) => step,
                // Another writer moved the job meanwhile (a cancel): it stays as written.
                None => return Ok(()),
            },
            (kind, Some(id)) => {
                let Some(webhook) = self.webhooks.get(&id).await? else {
                    job.finish(
                        JobState::Failed,
                        Some(format!("webhook {id} was deleted")),
                        now,
                    );
                    return self.record(&job, expected).await;
                };
                match kind {
                    JobKind::Backfill => self.backfill_chunk(&job, &webhook).await?,
                    _ => self.recover_chunk(&job, &webhook).await?,
                }
            }
            (_, None) => {
                job.finish(
                    JobState::Failed,
                    Some("the job names no webhook".into()),
                    now,
                );
                return self.record(&job, expected).await;
            }
        };
        // A purge may have written the job once already (what it is about to change).
        let expected = job.version - 1;
        job.done += requeued;
        job.next_chunk += 1;
        match next {
            Some(next) => {
                job.state = JobState::Running;
                job.cursor = Some(next);
                // The next chunk first: a crash before the progress is written repeats this
                // chunk, and never leaves the job without a message to move it.
                let next_chunk = JobChunk {
                    job: job.id.clone(),
                    chunk: job.next_chunk,
                };
                self.queue.send_job_chunk(&next_chunk, CHUNK_PAUSE).await?;
            }
            // A step that ended the job (failed) said so already.
            None if job.state.is_final() => {}
            None => job.finish(JobState::Done, None, now),
        }
        tracing::info!(
            requeued,
            done = job.done,
            total = job.total,
            state = job.state.as_str(),
            "job chunk ran"
        );
        self.record(&job, expected).await
    }

    /// One page of the webhook's attempt log: what it redelivered, and where the next page
    /// starts (`None`: the window is walked).
    async fn recover_chunk(
        &self,
        job: &Job,
        webhook: &Webhook,
    ) -> Result<(u64, Option<String>), PortError> {
        let cursor = job.cursor.clone().map(Cursor);
        let page = self
            .attempts
            .list(&webhook.id, None, cursor.as_ref(), CHUNK)
            .await?;
        let mut requeued = 0;
        let mut older = false;
        for attempt in &page.items {
            older |= attempt.at < job.since;
            if attempt.at < job.since || attempt.at > job.until || !failed_for_good(attempt.status)
            {
                continue;
            }
            if self.recover_one(webhook, attempt).await? {
                requeued += 1;
            }
        }
        Ok((requeued, page.next.filter(|_| !older).map(|c| c.0)))
    }

    /// One page of one App's events: the deliveries it queued (marked as backfill, with ids
    /// of this job), and where the next page starts: `<app index>|<event cursor>`.
    async fn backfill_chunk(
        &self,
        job: &Job,
        webhook: &Webhook,
    ) -> Result<(u64, Option<String>), PortError> {
        let (index, cursor) = match job.cursor.as_deref().and_then(|c| c.split_once('|')) {
            Some((i, c)) => (
                i.parse::<usize>()
                    .map_err(|_| PortError::Corrupt(format!("backfill cursor {c}")))?,
                (!c.is_empty()).then(|| Cursor(c.to_owned())),
            ),
            None => (0, None),
        };
        let Some(app) = job.apps.get(index) else {
            return Ok((0, None));
        };
        let page = self
            .events
            .list_for_app(app, job.since, job.until, cursor.as_ref(), CHUNK)
            .await?;
        // An App whose grant was revoked since the job started is skipped from here on.
        let suspended = webhook.suspended_for(app).is_some();
        let messages: Vec<DeliveryMessage> = page
            .items
            .iter()
            .filter(|e| !suspended && wanted(webhook, &e.event))
            .map(|e| {
                let group = webhook
                    .spec
                    .ordering
                    .group(webhook.id.as_str(), &e.event.urn.to_string());
                DeliveryMessage {
                    delivery_id: DeliveryId::for_backfill(
                        job.id.as_str(),
                        &e.event.id,
                        &webhook.id,
                    ),
                    backfill: true,
                    ..DeliveryMessage::first(&e.event.id, &webhook.id, group)
                }
            })
            .collect();
        if !messages.is_empty() {
            let unsent = self.deliveries.send_deliveries(&messages).await?;
            if !unsent.is_empty() {
                return Err(PortError::Unavailable(
                    "the deliveries queue did not accept a backfilled delivery".into(),
                ));
            }
        }
        let next = match page.next {
            Some(next) => Some(format!("{index}|{}", next.0)),
            None if index + 1 < job.apps.len() => Some(format!("{}|", index + 1)),
            None => None,
        };
        Ok((messages.len() as u64, next))
    }

    /// Starts purging App `app_id` on behalf of `created_by`, or answers the purge of it that
    /// is under way (a second request is the same request: purges are idempotent). The bool
    /// says whether this call started it.
    pub async fn purge(&self, app_id: &str, created_by: &str) -> Result<(Job, bool), JobError> {
        let lock = JobLock::App(app_id.to_owned());
        for _ in 0..3 {
            if let Some(id) = self.store.active_for(&lock).await? {
                if let Some(job) = self.store.get(&id).await? {
                    return Ok((job, false));
                }
            }
            let mut webhooks = 0;
            let mut cursor = None;
            loop {
                let page = self
                    .webhooks
                    .list_for_app(app_id, cursor.as_ref(), 100)
                    .await?;
                webhooks += page.items.len() as u64;
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let job = Job::purge(app_id, created_by, webhooks, OffsetDateTime::now_utc());
            match self.start(&job).await {
                Ok(()) => return Ok((job, true)),
                // Another request started one meanwhile: answer that one.
                Err(JobError::Busy { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(JobError::Port(PortError::VersionConflict { expected: 0 }))
    }

    /// One step of a purge (its `cursor`: `<phase>|<position>`), in an order that leaves
    /// nothing behind: the App's webhooks are deleted or lose its URNs first (so nothing new
    /// is fanned out or delivered for it), then its queued messages, its events (so a
    /// delivery still in flight finds no event to record an attempt for), the attempts of
    /// each webhook it touched, and last the App's own items. Returns what this step
    /// deleted or changed, and the next cursor (`None`: done).
    async fn purge_chunk(
        &self,
        job: &mut Job,
        stored: u64,
    ) -> Result<Option<(u64, Option<String>)>, PortError> {
        let app = job
            .app_id
            .clone()
            .ok_or_else(|| PortError::Corrupt(format!("purge {} names no App", job.id)))?;
        let mut progress = job.purge.clone().unwrap_or_default();
        let cursor = job.cursor.clone().unwrap_or_else(|| "webhooks|0".into());
        let (phase, position) = cursor.split_once('|').unwrap_or((cursor.as_str(), ""));
        let position = (!position.is_empty()).then(|| Cursor(position.to_owned()));
        let (done, next) = match phase {
            "webhooks" => {
                let stalls: u32 = position
                    .as_ref()
                    .and_then(|c| c.0.parse().ok())
                    .unwrap_or(0);
                match self
                    .purge_webhooks(job, stored, &app, &mut progress, stalls)
                    .await?
                {
                    Some(step) => step,
                    None => return Ok(None),
                }
            }
            "messages" => {
                let (n, more) = self
                    .deliveries
                    .erase_app(&app, &progress.deleted, position.as_ref(), PURGE_CHUNK)
                    .await?;
                progress.messages += n;
                let next = match more {
                    Some(c) => format!("messages|{}", c.0),
                    None => "events|".to_owned(),
                };
                (n, Some(next))
            }
            "events" => {
                let now = OffsetDateTime::now_utc();
                let since = now - crate::retention::MAX - time::Duration::days(2);
                let until = now + time::Duration::minutes(1);
                let page = self
                    .events
                    .list_for_app(&app, since, until, position.as_ref(), PURGE_CHUNK)
                    .await?;
                let ids: Vec<_> = page.items.iter().map(|e| e.event.id.clone()).collect();
                let n = self.events.erase(&ids).await?;
                progress.events += n;
                let next = match page.next {
                    Some(c) => format!("events|{}", c.0),
                    None => "attempts|0|".to_owned(),
                };
                (n, Some(next))
            }
            "attempts" => {
                let (index, at) = position
                    .as_ref()
                    .map_or(("0", ""), |c| c.0.split_once('|').unwrap_or((&c.0, "")));
                let index: usize = index
                    .parse()
                    .map_err(|_| PortError::Corrupt(format!("purge cursor {cursor}")))?;
                let at = (!at.is_empty()).then(|| Cursor(at.to_owned()));
                let deleted = progress.deleted.len();
                let target = progress.deleted.iter().chain(&progress.stripped).nth(index);
                match target.cloned() {
                    Some(webhook) => {
                        let only = (index >= deleted).then_some(app.as_str());
                        let (n, more) = self
                            .attempts
                            .erase(&webhook, only, at.as_ref(), PURGE_CHUNK)
                            .await?;
                        progress.attempts += n;
                        let next = match more {
                            Some(c) => format!("attempts|{index}|{}", c.0),
                            None => format!("attempts|{}|", index + 1),
                        };
                        (n, Some(next))
                    }
                    None => (0, Some("app|".to_owned())),
                }
            }
            "app" => {
                self.webhooks.forget_app(&app).await?;
                (0, None)
            }
            other => {
                return Err(PortError::Corrupt(format!(
                    "purge cursor phase {other} of job {}",
                    job.id
                )))
            }
        };
        job.purge = Some(progress);
        job.total = job.total.max(job.done + done);
        Ok(Some((done, next)))
    }

    /// The webhooks step of a purge: one page of the webhooks naming `app`, each recorded
    /// in the job (written before anything changes, so a resumed purge still knows a webhook
    /// it stripped) and then deleted (named only `app`) or stripped of `app`'s URNs. Stays
    /// on this step while any are left; a page on which nothing could be changed (each
    /// changed meanwhile) is tried again, up to a few times, then the job fails. `None`: the
    /// job itself changed meanwhile (cancelled).
    async fn purge_webhooks(
        &self,
        job: &mut Job,
        stored: u64,
        app: &str,
        progress: &mut PurgeProgress,
        stalls: u32,
    ) -> Result<Option<(u64, Option<String>)>, PortError> {
        const MAX_STALLS: u32 = 5;
        let page = self.webhooks.list_for_app(app, None, CHUNK).await?;
        if page.items.is_empty() {
            return Ok(Some((0, Some("messages|".to_owned()))));
        }
        let mut recorded = false;
        for w in &page.items {
            let list = if w.names_only(app) {
                &mut progress.deleted
            } else {
                &mut progress.stripped
            };
            if !list.contains(&w.id) {
                list.push(w.id.clone());
                recorded = true;
            }
        }
        if recorded {
            job.purge = Some(progress.clone());
            match self.store.update(job, stored).await {
                Ok(()) => job.version += 1,
                Err(PortError::VersionConflict { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let mut changed = 0;
        for w in &page.items {
            if w.names_only(app) {
                match self.webhooks.delete(&w.id, w.version).await {
                    Ok(()) => {
                        tracing::info!(webhook_id = %w.id, app_id = app, owner = %w.owner, "webhook deleted by the App's purge");
                        self.rate_limiter.forget(&w.id).await?;
                        changed += 1;
                    }
                    Err(PortError::VersionConflict { .. } | PortError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            } else {
                match self.lifecycle.remove_app(w, app).await {
                    Ok(Some(_)) => changed += 1,
                    Ok(None) | Err(PortError::VersionConflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if changed == 0 {
            if stalls + 1 >= MAX_STALLS {
                job.finish(
                    JobState::Failed,
                    Some(format!(
                        "the webhooks naming App {app} kept changing while it was purged; start it again"
                    )),
                    OffsetDateTime::now_utc(),
                );
                return Ok(Some((0, None)));
            }
            return Ok(Some((0, Some(format!("webhooks|{}", stalls + 1)))));
        }
        Ok(Some((changed, Some("webhooks|0".to_owned()))))
    }

    /// Writes a chunk's progress; a job cancelled meanwhile stays cancelled.
    async fn record(&self, job: &Job, expected: u64) -> Result<(), PortError> {
        match self.store.update(job, expected).await {
            Err(PortError::VersionConflict { .. }) => {
                tracing::info!(job_id = %job.id, "the job changed while its chunk ran (cancelled); its progress is not recorded");
                Ok(())
            }
            other => other,
        }
    }

    /// Redelivers the delivery of `attempt` if it is the delivery's last attempt (so each
    /// delivery goes once however many failed attempts it has): same delivery id, attempt
    /// numbers going on.
    async fn recover_one(&self, webhook: &Webhook, attempt: &Attempt) -> Result<bool, PortError> {
        let Some((event_id, last)) = self
            .attempts
            .last_attempt(&webhook.id, &attempt.delivery_id)
            .await?
        else {
            return Ok(false);
        };
        if last != attempt.attempt {
            return Ok(false);
        }
        let group = match webhook.spec.ordering {
            crate::rules::Ordering::None => None,
            ordering => match self.events.get(&event_id).await? {
                Some(event) => ordering.group(webhook.id.as_str(), &event.urn.to_string()),
                None => None,
            },
        };
        let message = DeliveryMessage {
            delivery_id: attempt.delivery_id.clone(),
            prior_attempts: last,
            ..DeliveryMessage::first(&event_id, &webhook.id, group)
        };
        let unsent = self
            .deliveries
            .send_deliveries(std::slice::from_ref(&message))
            .await?;
        if !unsent.is_empty() {
            return Err(PortError::Unavailable(
                "the deliveries queue did not accept a recovered delivery".into(),
            ));
        }
        tracing::info!(delivery_id = %attempt.delivery_id, event_id = %event_id, "delivery recovered");
        Ok(true)
    }
}
