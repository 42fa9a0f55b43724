//! `GET /v1/me`: who the token is; `GET /v1/apps`: the Apps it may manage that have webhooks.

use std::sync::Arc;

use super::*;

/// Who a token is.
#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    /// The token's `sub`.
    pub(crate) sub: String,
    /// Its grants (`edit-app:A1`, `edit-app:*`, `publish-events:A1`, `manage-grants:*`).
    pub(crate) permissions: Vec<String>,
}

/// Who the token is: its subject and permissions (the console picks the App from them).
#[utoipa::path(
    get, path = "/v1/me", tag = "caller", operation_id = "whoAmI",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = "4XX", description = "No token (401)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn who_am_i(Authenticated(p): Authenticated) -> Response {
    json_response(
        StatusCode::OK,
        &Me {
            permissions: p
                .permissions_claim()
                .split(' ')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            sub: p.sub,
        },
    )
}

/// Apps, by id.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppList {
    /// App ids, sorted.
    pub(crate) items: Vec<String>,
}

/// The Apps that have webhooks and that the caller may manage (with `edit-app:*`: every App
/// that has one): the console's suggestions.
#[utoipa::path(
    get, path = "/v1/apps", tag = "caller", operation_id = "listApps",
    responses(
        (status = 200, description = "The Apps", body = AppList),
        (status = "4XX", description = "No token (401), no edit-app at all (403)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_apps(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
) -> Answer {
    let items = s.webhooks.apps(&p).await?;
    Ok(json_response(StatusCode::OK, &AppList { items }))
}
