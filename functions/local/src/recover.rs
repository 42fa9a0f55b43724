//! `hookline recover`, `hookline backfill` and `hookline purge-app`: start a job on the
//! embedded store (the running `hookline serve` runs its chunks) and follow it with a
//! progress bar.

use std::time::{Duration, Instant};

use hookline_core::job::{window, Job, JobKind, JobState};
use hookline_core::jobs::{JobError, Jobs, Recovery};
use hookline_core::retention::Retention;
use hookline_core::webhook::Webhook;
use indicatif::ProgressBar;
use time::OffsetDateTime;

/// How often the progress bar reads the job.
const POLL: Duration = Duration::from_millis(200);
/// How long a job may sit queued before the command says who runs it.
const QUEUED_HINT_AFTER: Duration = Duration::from_secs(5);

/// Counts, and unless `dry_run` starts, a job of `kind` on `webhook` over `[since, until]`
/// (a backfill reads every App of the webhook whose grant stands); the window is checked as
/// the API checks it, each refusal naming its flag.
pub async fn start(
    jobs: &Jobs,
    kind: JobKind,
    webhook: &Webhook,
    since: &str,
    until: Option<&str>,
    dry_run: bool,
    retention: Retention,
) -> Result<Recovery, String> {
    let (since, until) =
        window(since, until, OffsetDateTime::now_utc(), retention).map_err(|e| format!("--{e}"))?;
    let started = match kind {
        JobKind::Recover => {
            jobs.recover(webhook, since, until, dry_run, "hookline-cli")
                .await
        }
        JobKind::Purge => return Err("a purge is started by `hookline purge-app`".into()),
        JobKind::Backfill => {
            let apps = webhook
                .spec
                .app_ids()
                .into_iter()
                .filter(|app| webhook.suspended_for(app).is_none())
                .map(str::to_owned)
                .collect();
            jobs.backfill(webhook, apps, since, until, dry_run, "hookline-cli")
                .await
        }
    };
    started.map_err(|e| match e {
        JobError::Port(p) => format!("the store failed: {p}"),
        other => other.to_string(),
    })
}

/// Follows `job` until it ends, moving `bar`; says once when nothing has run it for a while
/// (`hookline serve` is not running on this store).
pub async fn follow(jobs: &Jobs, job: &Job, bar: &ProgressBar) -> Result<Job, String> {
    let started = Instant::now();
    let mut hinted = false;
    loop {
        let now = jobs
            .get(&job.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("job {} vanished from the store", job.id))?;
        bar.set_length(now.total);
        bar.set_position(now.done);
        if now.state.is_final() {
            return Ok(now);
        }
        if !hinted && now.state == JobState::Queued && started.elapsed() > QUEUED_HINT_AFTER {
            bar.println(
                "the job is still queued: `hookline serve` on this store runs it (is it running?)",
            );
            hinted = true;
        }
        tokio::time::sleep(POLL).await;
    }
}
