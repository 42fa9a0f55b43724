//! The root mutation: thin resolvers over the webhook and deliveries services, each answering
//! a [`WebhookMutationResult`].

use async_graphql::{Context, Json, Object, Result, ID};
use hookline_core::webhook::{NewWebhook, WebhookPatch};

use super::objects::*;
use super::query::*;
use crate::error::ServiceError;
use crate::recovery::WindowInput;
use crate::service::ProbeInput;
use hookline_core::job::JobKind;

/// Turns a service call's outcome into the mutation's result.
pub(crate) fn answer<T>(
    outcome: Result<T, ServiceError>,
    done: impl FnOnce(T) -> WebhookMutationResult,
) -> Result<WebhookMutationResult> {
    match outcome {
        Ok(t) => Ok(done(t)),
        Err(e) => WebhookMutationResult::refused(e),
    }
}

pub(crate) fn version_of(expected: Option<i64>) -> Result<Option<u64>, ServiceError> {
    expected
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                ServiceError::BadRequest(format!("expectedVersion {v} is not a version"))
            })
        })
        .transpose()
}

/// Starts (or, for a dry run, counts) a recover or a backfill: the mutation's result with
/// `matched` and the `job`.
async fn start_job(
    ctx: &Context<'_>,
    webhook_id: &str,
    input: WindowInput,
    kind: JobKind,
) -> Result<WebhookMutationResult> {
    let (recovery, p) = (recovery(ctx)?, principal(ctx)?);
    let outcome = async {
        let started = match kind {
            JobKind::Recover => recovery.recover(p, webhook_id, &input).await?,
            _ => recovery.backfill(p, webhook_id, &input).await?,
        };
        let job = match &started.job_id {
            Some(id) => Some(recovery.job(p, id.as_str()).await?),
            None => None,
        };
        Ok((started.matched, job))
    }
    .await;
    let (things, verb) = match kind {
        JobKind::Recover => ("deliveries", "redelivers"),
        _ => ("events", "sends"),
    };
    answer(outcome, |(matched, job)| WebhookMutationResult {
        code: "OK".into(),
        message: match &job {
            Some(j) => format!("{matched} {things} matched; job {} {verb} them", j.id),
            None => format!("{matched} {things} matched; no job started"),
        },
        success: true,
        matched: Some(i64::try_from(matched).unwrap_or(i64::MAX)),
        job: job.as_ref().map(JobObject::of),
        ..WebhookMutationResult::default()
    })
}

/// The root mutation.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates and activates a new webhook. The result holds its signing secret, shown this
    /// once.
    async fn register_webhook(
        &self,
        ctx: &Context<'_>,
        webhook: RegisterWebhookInput,
    ) -> Result<WebhookMutationResult> {
        let service = webhooks(ctx)?;
        let p = principal(ctx)?;
        let outcome = async {
            let input = NewWebhook {
                name: webhook.description,
                url: webhook.url.unwrap_or_default(),
                destination: webhook.destination.map(DestinationInputObject::into_input),
                event_types: webhook.events,
                urns: webhook.urns,
                custom_headers: header_map(webhook.custom_headers)?,
                enabled: webhook.enabled,
                secret: webhook.secret,
                filter: webhook.filter.map(|j| j.0),
                retry: webhook.retry.map(WebhookRetryInput::into_input),
                rate_limit: webhook.rate_limit.map(WebhookRateLimitInput::into_limit),
                ordering: webhook.ordering.map(Into::into),
                oauth2: webhook.oauth2.map(OAuth2InputObject::into_input),
            };
            service.create(p, &input, webhook.app_id.as_deref()).await
        }
        .await;
        answer(outcome, |c| {
            WebhookMutationResult::with_secret(c, "registered")
        })
    }

    /// Issues an external id for the role of an AWS destination in App `appId`, with the
    /// trust policy to give the role (and its permission policy, given `type` and `arn`).
    async fn issue_external_id(
        &self,
        ctx: &Context<'_>,
        app_id: String,
        #[graphql(name = "type")] kind: Option<String>,
        arn: Option<String>,
    ) -> Result<ExternalIdGrantObject> {
        let service = webhooks(ctx)?;
        let p = principal(ctx)?;
        let input = crate::service::ExternalIdInput { app_id, kind, arn };
        let grant = service
            .issue_external_id(p, &input)
            .await
            .map_err(crate::graphql::errors::query_error)?;
        Ok(ExternalIdGrantObject {
            external_id: grant.external_id,
            principal: grant.principal,
            trust_policy: grant.trust_policy.map(Json),
            permission_policy: grant.permission_policy.map(Json),
        })
    }

    /// Update the configuration of an existing webhook.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] id: ID,
        webhook: UpdateWebhookInput,
        #[graphql(
            desc = "The `version` read: refused with PRECONDITION_FAILED if it changed since."
        )]
        expected_version: Option<i64>,
    ) -> Result<WebhookMutationResult> {
        let service = webhooks(ctx)?;
        let p = principal(ctx)?;
        let outcome = async {
            let patch = WebhookPatch {
                name: webhook.description,
                url: webhook.url,
                destination: webhook.destination.map(DestinationInputObject::into_input),
                event_types: webhook.events,
                urns: webhook.urns,
                custom_headers: header_map(webhook.custom_headers)?,
                enabled: webhook.enabled,
                filter: patch_field(webhook.filter, |j| j.0),
                retry: patch_field(webhook.retry, WebhookRetryInput::into_input),
                rate_limit: patch_field(webhook.rate_limit, WebhookRateLimitInput::into_limit),
                ordering: webhook.ordering.map(Into::into),
                oauth2: patch_field(webhook.oauth2, OAuth2InputObject::into_input),
            };
            service
                .update(p, &id, &patch, version_of(expected_version)?)
                .await
        }
        .await;
        answer(outcome, |w| WebhookMutationResult::touched(w, "updated"))
    }

    /// Deactivates and removes a webhook: it receives nothing more.
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] id: ID,
        #[graphql(
            desc = "The `version` read: refused with PRECONDITION_FAILED if it changed since."
        )]
        expected_version: Option<i64>,
    ) -> Result<WebhookMutationResult> {
        let service = webhooks(ctx)?;
        let p = principal(ctx)?;
        let outcome = async {
            let current = service.get(p, &id).await?;
            let expected = version_of(expected_version)?.or(Some(current.version));
            service.delete(p, &id, expected).await.map(|()| current)
        }
        .await;
        answer(outcome, |w| WebhookMutationResult::touched(w, "deleted"))
    }

    /// Makes a new signing secret, shown this once in the result; the old one keeps signing
    /// for 24 hours.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] id: ID,
    ) -> Result<WebhookMutationResult> {
        let outcome = webhooks(ctx)?.rotate_secret(principal(ctx)?, &id).await;
        answer(outcome, |c| {
            WebhookMutationResult::with_secret(c, "secret rotated")
        })
    }

    /// Sends a signed `webhook.test` event to the webhook through the real delivery path;
    /// its attempts show in `Webhook.deliveries`.
    async fn test_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] id: ID,
    ) -> Result<WebhookMutationResult> {
        let (service, deliveries, p) = (webhooks(ctx)?, deliveries(ctx)?, principal(ctx)?);
        let outcome = async {
            let webhook = service.get(p, &id).await?;
            let queued = deliveries.send_test(p, &id).await?;
            Ok((webhook, queued))
        }
        .await;
        answer(outcome, |(w, q)| {
            WebhookMutationResult::queued(format!("test event {} queued", q.event_id), w, q)
        })
    }

    /// Checks an endpoint before registering it, as the check on save does: HEAD, then a
    /// signed `webhook.test` POST, within 5 s. `success` says the check ran; `probe.ok` whether
    /// the endpoint answered 200.
    async fn probe_webhook_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "URL of the HTTPS endpoint to check.")] url: String,
        #[graphql(desc = "Headers to send along, as deliveries would.")] custom_headers: Option<
            Vec<Option<HttpHeaderInput>>,
        >,
    ) -> Result<WebhookMutationResult> {
        let (service, p) = (webhooks(ctx)?, principal(ctx)?);
        let outcome = async {
            let input = ProbeInput {
                url,
                custom_headers: header_map(custom_headers)?,
            };
            service.test_url(p, &input).await
        }
        .await;
        answer(outcome, |r| WebhookMutationResult {
            code: "OK".into(),
            message: if r.ok {
                format!("the endpoint answered 200 to {}", r.method)
            } else {
                format!(
                    "the endpoint did not answer 200: {}",
                    r.error.as_deref().unwrap_or("no answer")
                )
            },
            success: true,
            probe: Some(WebhookProbe::of(r)),
            ..WebhookMutationResult::default()
        })
    }

    /// Queues one delivery again, from the event log (after fixing the endpoint, say).
    async fn redeliver_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] webhook_id: ID,
        #[graphql(desc = "`WebhookDelivery.deliveryId`.")] delivery_id: ID,
    ) -> Result<WebhookMutationResult> {
        let (service, deliveries, p) = (webhooks(ctx)?, deliveries(ctx)?, principal(ctx)?);
        let outcome = async {
            let webhook = service.get(p, &webhook_id).await?;
            let queued = deliveries.redeliver(p, &webhook_id, &delivery_id).await?;
            Ok((webhook, queued))
        }
        .await;
        answer(outcome, |(w, q)| {
            WebhookMutationResult::queued(format!("delivery {} queued", q.delivery_id), w, q)
        })
    }

    /// Redelivers, as a background job, every delivery of the webhook whose last attempt
    /// failed for good (exhausted, dead-lettered, a final 4xx) between `since` and `until`,
    /// once each; `dryRun` only counts. The result holds `matched` and the `job`.
    async fn recover_webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] webhook_id: ID,
        #[graphql(
            desc = "The window's start (RFC 3339): not in the future, not before the retention horizon."
        )]
        since: String,
        #[graphql(desc = "The window's end (RFC 3339; default: now).")] until: Option<String>,
        #[graphql(desc = "Only count what would be sent.")] dry_run: Option<bool>,
    ) -> Result<WebhookMutationResult> {
        let input = WindowInput {
            since,
            until,
            dry_run: dry_run.unwrap_or(false),
        };
        start_job(ctx, &webhook_id, input, JobKind::Recover).await
    }

    /// Sends the webhook, as a background job, every logged event received between `since`
    /// and `until` that it would have matched, from the Apps the caller may edit and whose
    /// grant to its owner stands; each delivery carries `webhook-backfill: true`. `dryRun`
    /// only counts. The result holds `matched` and the `job`.
    async fn backfill_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] webhook_id: ID,
        #[graphql(
            desc = "The window's start (RFC 3339): not in the future, not before the retention horizon."
        )]
        since: String,
        #[graphql(desc = "The window's end (RFC 3339; default: now).")] until: Option<String>,
        #[graphql(desc = "Only count what would be sent.")] dry_run: Option<bool>,
    ) -> Result<WebhookMutationResult> {
        let input = WindowInput {
            since,
            until,
            dry_run: dry_run.unwrap_or(false),
        };
        start_job(ctx, &webhook_id, input, JobKind::Backfill).await
    }

    /// Purges an App (tenant off-boarding, erasure requests) as a background job: its events,
    /// attempts, queued deliveries and rate-limit state go; webhooks naming only this App are
    /// deleted, webhooks that also name other Apps lose this App's URNs (each App they still
    /// name hears `webhook.app-purged`). Asking again while it runs answers the same job.
    /// Needs `manage-apps` on the App (REST: `DELETE /v1/apps/{appId}`).
    async fn purge_app(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The App's id.")] app_id: String,
    ) -> Result<WebhookMutationResult> {
        let outcome = recovery(ctx)?.purge_app(principal(ctx)?, &app_id).await;
        answer(outcome, |(job, started)| WebhookMutationResult {
            code: "OK".into(),
            message: if started {
                format!("job {} purges App {app_id}", job.id)
            } else {
                format!("job {} is purging App {app_id} already", job.id)
            },
            success: true,
            job: Some(JobObject::of(&job)),
            ..WebhookMutationResult::default()
        })
    }

    /// Cancels an unfinished background job: chunks not yet run are not run.
    async fn cancel_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job (`job_...`).")] id: ID,
    ) -> Result<WebhookMutationResult> {
        let outcome = recovery(ctx)?.cancel(principal(ctx)?, &id).await;
        answer(outcome, |job| WebhookMutationResult {
            code: "OK".into(),
            message: format!("job {} cancelled", job.id),
            success: true,
            job: Some(JobObject::of(&job)),
            ..WebhookMutationResult::default()
        })
    }
}
