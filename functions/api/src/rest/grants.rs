//! `/v1/grants/revoke` and `/restore`: the platform reports permission changes.

use std::sync::Arc;

use super::*;

/// What a grant change did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrantChanged {
    /// The client.
    pub(crate) sub: String,
    /// The App.
    pub(crate) app_id: String,
    /// True after a revocation, false after a restore.
    pub(crate) revoked: bool,
    /// The client's webhooks on that App now suspended (revoke) or resumed (restore).
    pub(crate) webhooks: Vec<String>,
}

pub(crate) async fn change_grant(
    s: &Services,
    p: &hookline_core::auth::Principal,
    input: &GrantInput,
    revoked: bool,
) -> Answer {
    let outcome = s.webhooks.change_grant(p, input, revoked).await?;
    Ok(json_response(
        StatusCode::OK,
        &GrantChanged {
            sub: outcome.change.sub,
            app_id: outcome.change.app_id,
            revoked,
            webhooks: outcome.webhooks.iter().map(ToString::to_string).collect(),
        },
    ))
}

/// The platform revoked a client's permission on an App: its webhooks there are suspended
/// from the next event on, and it may not create more there until the grant is restored.
#[utoipa::path(
    post, path = "/v1/grants/revoke", tag = "grants", operation_id = "revokeGrant",
    request_body = GrantInput,
    responses(
        (status = 200, description = "Recorded; the webhooks suspended by it", body = GrantChanged),
        (status = "4XX", description = "Malformed (400), no token (401), no manage-grants on the App (403), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn revoke_grant(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<GrantInput>,
) -> Answer {
    change_grant(&s, &p, &input, true).await
}

/// The platform gave a client its permission back: its webhooks there resume with the next
/// event (events published meanwhile are not replayed).
#[utoipa::path(
    post, path = "/v1/grants/restore", tag = "grants", operation_id = "restoreGrant",
    request_body = GrantInput,
    responses(
        (status = 200, description = "Recorded; the webhooks resumed by it", body = GrantChanged),
        (status = "4XX", description = "Malformed (400), no token (401), no manage-grants on the App (403), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn restore_grant(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<GrantInput>,
) -> Answer {
    change_grant(&s, &p, &input, false).await
}
