//! Recover a webhook's failed deliveries in bulk (`POST /v1/webhooks/{id}/recover`) as a
//! background job, and the jobs themselves (`GET /v1/jobs/{id}`, `POST .../cancel`).

use hookline_core::auth::Principal;
use hookline_core::job::{Job, JobId, JobKind, JobState};
use hookline_core::jobs::{JobError, Jobs};
use hookline_core::retention::Retention;
use hookline_core::timestamp::rfc3339;
use hookline_core::validation::{FieldError, ValidationErrors};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ServiceError;
use crate::service::WebhookService;

/// How far ahead of this server's clock `until` may be (clocks differ a little).
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// Body of `POST /v1/webhooks/{id}/recover`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowInput {
    /// The window's start (RFC 3339): not in the future, not before the retention horizon.
    #[schema(format = DateTime)]
    pub since: String,
    /// The window's end (RFC 3339; default: now): not before `since`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Only count what would be sent; start nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a recover matched, and the job sending it (none for a dry run or when nothing
/// matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Deliveries whose last attempt failed for good inside the window.
    pub matched: u64,
    /// The job redelivering them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub job_id: Option<JobId>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job.
    #[schema(value_type = String)]
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The webhook it works on.
    pub webhook_id: String,
    /// Where it stands.
    pub state: JobState,
    /// Items handled so far.
    pub done: u64,
    /// Items it matched when it started.
    pub total: u64,
    /// The window's start.
    #[schema(format = DateTime)]
    pub since: String,
    /// The window's end.
    #[schema(format = DateTime)]
    pub until: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its first chunk ran.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// When it ended.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            kind: job.kind,
            webhook_id: job.webhook_id.to_string(),
            state: job.state,
            done: job.done,
            total: job.total,
            since: rfc3339(job.since),
            until: rfc3339(job.until),
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            error: job.error.clone(),
        }
    }
}

/// Recover and jobs, over the webhook service (who may touch which webhook) and the jobs.
#[derive(Clone)]
pub struct RecoveryService {
    webhooks: WebhookService,
    jobs: Jobs,
}

impl RecoveryService {
    /// The service over `webhooks` and `jobs`.
    pub fn new(webhooks: WebhookService, jobs: Jobs) -> Self {
        Self { webhooks, jobs }
    }

    /// Counts the deliveries of the webhook whose last attempt failed for good in the window
    /// and, unless it is a dry run or nothing matched, starts a job redelivering them.
    pub async fn recover(
        &self,
        principal: &Principal,
        webhook_id: &str,
        input: &WindowInput,
    ) -> Result<Recovery, ServiceError> {
        let webhook = self.webhooks.load_visible(principal, webhook_id).await?;
        let now = OffsetDateTime::now_utc();
        let (since, until) = window(input, now, self.webhooks.settings().retention)?;
        if let Some(reason) = webhook.state.disabled_reason() {
            return Err(ServiceError::Conflict(format!(
                "webhook {} is disabled ({reason}): enable it before recovering its deliveries",
                webhook.id
            )));
        }
        let matched = self
            .jobs
            .count_recoverable(&webhook.id, since, until)
            .await?;
        if input.dry_run || matched == 0 {
            return Ok(Recovery {
                matched,
                job_id: None,
            });
        }
        let job = Job::new(
            JobKind::Recover,
            webhook.id.clone(),
            &principal.sub,
            since,
            until,
            matched,
            now,
        );
        self.jobs.start(&job).await.map_err(job_error)?;
        Ok(Recovery {
            matched,
            job_id: Some(job.id),
        })
    }

    /// A job the caller may see: one on a webhook it may manage, or one it started.
    pub async fn job(&self, principal: &Principal, id: &str) -> Result<Job, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("job {id}"));
        let id = JobId::parse(id).map_err(|_| not_found())?;
        let job = self.jobs.get(&id).await?.ok_or_else(not_found)?;
        if job.created_by == principal.sub {
            return Ok(job);
        }
        match self
            .webhooks
            .load_visible(principal, job.webhook_id.as_str())
            .await
        {
            Ok(_) => Ok(job),
            Err(ServiceError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(e),
        }
    }

    /// Cancels an unfinished job the caller may see; 409 when it has ended.
    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<Job, ServiceError> {
        let job = self.job(principal, id).await?;
        self.jobs.cancel(&job.id).await.map_err(job_error)
    }
}

fn job_error(e: JobError) -> ServiceError {
    match e {
        JobError::Busy { .. } | JobError::Ended(..) => ServiceError::Conflict(e.to_string()),
        JobError::NotFound(id) => ServiceError::NotFound(format!("job {id}")),
        JobError::Port(p) => ServiceError::Store(p),
    }
}

/// The window of a recover: both ends RFC 3339, `since` not after `until`, nothing in the
/// future, nothing before the retention horizon; each refusal names its field.
fn window(
    input: &WindowInput,
    now: OffsetDateTime,
    retention: Retention,
) -> Result<(OffsetDateTime, OffsetDateTime), ServiceError> {
    let invalid = |field: &str, why: String| {
        ServiceError::Invalid(ValidationErrors::new(vec![FieldError::new(field, why)]))
    };
    let parse = |field: &str, text: &str| {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
            invalid(
                field,
                format!("\"{text}\" is not an RFC 3339 time (2026-12-03T10:00:00Z)"),
            )
        })
    };
    let since = parse("since", &input.since)?;
    let until = match &input.until {
        Some(text) => parse("until", text)?,
        None => now,
    };
    if since > now {
        return Err(invalid(
            "since",
            format!("{} is in the future", input.since),
        ));
    }
    if until > now + CLOCK_SKEW {
        return Err(invalid(
            "until",
            format!(
                "{} is in the future",
                input.until.as_deref().unwrap_or_default()
            ),
        ));
    }
    if since > until {
        return Err(invalid(
            "since",
            format!("{} is after until ({})", input.since, rfc3339(until)),
        ));
    }
    let horizon = retention.horizon(now);
    if since < horizon {
        return Err(invalid(
            "since",
            format!(
                "{} is before the retention horizon {} (events and attempts are kept {})",
                input.since,
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

    fn input(since: &str, until: Option<&str>) -> WindowInput {
        WindowInput {
            since: since.into(),
            until: until.map(str::to_owned),
            dry_run: false,
        }
    }

    fn field_of(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid(errors) => errors.errors()[0].field.clone(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn bad_windows_are_refused_naming_the_field() {
        let now = OffsetDateTime::parse(
            "2026-12-04T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .expect("now");
        let r = Retention::default();
        let ok = window(&input("2026-12-04T06:00:00Z", None), now, r).expect("ok");
        assert_eq!(ok.1, now);
        for (i, field) in [
            (input("yesterday", None), "since"),
            (input("2026-12-04T06:00:00Z", Some("later")), "until"),
            (input("2026-12-05T06:00:00Z", None), "since"),
            (
                input("2026-12-04T06:00:00Z", Some("2026-12-05T00:00:00Z")),
                "until",
            ),
            (
                input("2026-12-04T08:00:00Z", Some("2026-12-04T07:00:00Z")),
                "since",
            ),
            (input("2026-10-01T00:00:00Z", None), "since"),
        ] {
            assert_eq!(field_of(window(&i, now, r).expect_err("refused")), field);
        }
    }
}
