//! Recover a webhook's failed deliveries, send it past events, or purge an App's data, as
//! background jobs; and the jobs.

use std::sync::Arc;

use super::*;

/// The jobs routes' service: present when the API was built over every port.
fn recovery(s: &Services) -> Result<&RecoveryService, Problem> {
    s.recovery
        .as_ref()
        .ok_or_else(|| Problem::not_found("background jobs are not served by this API"))
}

/// Redeliver every delivery of the webhook whose last attempt failed for good (exhausted,
/// dead-lettered, a final 4xx) in the window, once each, as a background job.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/recover", tag = "jobs", operation_id = "recoverDeliveries",
    params(("id" = String, Path, description = "wh_<ULID>")),
    request_body = WindowInput,
    responses(
        (status = 202, description = "A job redelivers the matched deliveries (`GET /v1/jobs/{jobId}`)", body = Recovery),
        (status = 200, description = "A dry run, or nothing matched: the count, no job", body = Recovery),
        (status = "4XX", description = "Malformed body (400), no token (401), not found (404), the webhook is disabled or has an unfinished job (409), a window in the future, reversed or before the retention horizon (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn recover(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<WindowInput>,
) -> Answer {
    let recovery = recovery(&s)?.recover(&p, &id, &input).await?;
    let status = if recovery.job_id.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &recovery))
}

/// Send the webhook every logged event of the window it would have matched (event types, URN
/// patterns, payload filter), from the Apps the caller may edit and whose grant to the
/// webhook's owner stands, oldest first per App, as a background job. Each delivery carries
/// `webhook-backfill: true` and is marked in the attempt log.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/backfill", tag = "jobs", operation_id = "backfillWebhook",
    params(("id" = String, Path, description = "wh_<ULID>")),
    request_body = WindowInput,
    responses(
        (status = 202, description = "A job sends the matched events (`GET /v1/jobs/{jobId}`)", body = Recovery),
        (status = 200, description = "A dry run, or nothing matched: the count, no job", body = Recovery),
        (status = "4XX", description = "Malformed body (400), no token (401), not found (404), the webhook is disabled or has an unfinished job (409), a window in the future, reversed or before the retention horizon (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn backfill(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<WindowInput>,
) -> Answer {
    let backfill = recovery(&s)?.backfill(&p, &id, &input).await?;
    let status = if backfill.job_id.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &backfill))
}

/// Purge an App (tenant off-boarding, erasure requests): its events, attempts, queued
/// deliveries and rate-limit state are deleted; webhooks naming only this App are deleted,
/// webhooks that also name other Apps lose this App's URNs and keep working for the rest
/// (each App they still name hears `webhook.app-purged`). Other Apps are untouched. Runs as a
/// background job; asking again while it runs answers the same job, and asking after it
/// ended runs it again (events published meanwhile go too). Needs `manage-apps` on the App
/// (the platform's permission).
#[utoipa::path(
    delete, path = "/v1/apps/{appId}", tag = "jobs", operation_id = "purgeApp",
    params(("appId" = String, Path, description = "The App's id (one URN segment)")),
    responses(
        (status = 202, description = "The purge job (`GET /v1/jobs/{jobId}`): started now, or the one under way", body = JobView, headers(("Location" = String, description = "/v1/jobs/{jobId}"))),
        (status = "4XX", description = "Not an App id (400), no token (401), no manage-apps on the App (403)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn purge_app(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(app_id): Path<String>,
) -> Answer {
    let (job, _) = recovery(&s)?.purge_app(&p, &app_id).await?;
    let mut response = json_response(StatusCode::ACCEPTED, &JobView::from(&job));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A background job: its state and progress.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "getJob",
    params(("id" = String, Path, description = "job_<ULID>")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = "4XX", description = "No token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_job(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let job = recovery(&s)?.job(&p, &id).await?;
    Ok(json_response(StatusCode::OK, &JobView::from(&job)))
}

/// Cancel an unfinished job: chunks not yet run are not run.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "cancelJob",
    params(("id" = String, Path, description = "job_<ULID>")),
    responses(
        (status = 200, description = "The cancelled job", body = JobView),
        (status = "4XX", description = "No token (401), not found (404), the job has ended (409)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn cancel_job(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let job = recovery(&s)?.cancel(&p, &id).await?;
    Ok(json_response(StatusCode::OK, &JobView::from(&job)))
}
