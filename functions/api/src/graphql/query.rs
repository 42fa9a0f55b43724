//! The root query, and what its resolvers share: the caller, the services, page sizes.

use async_graphql::{Context, InputObject, Object, Result, ID};
use hookline_core::auth::Principal;
use hookline_core::webhook::Webhook;

use super::errors::query_error;
use super::objects::*;
use crate::deliveries::DeliveriesService;
use crate::error::ServiceError;
use crate::recovery::RecoveryService;
use crate::service::{page_size, WebhookService, MAX_PAGE};

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    ctx.data::<Principal>()
}

pub(crate) fn webhooks<'a>(ctx: &Context<'a>) -> Result<&'a WebhookService> {
    ctx.data::<WebhookService>()
}

pub(crate) fn deliveries<'a>(ctx: &Context<'a>) -> Result<&'a DeliveriesService> {
    ctx.data::<DeliveriesService>()
}

pub(crate) fn recovery<'a>(ctx: &Context<'a>) -> Result<&'a RecoveryService> {
    ctx.data::<RecoveryService>()
        .map_err(|_| async_graphql::Error::new("background jobs are not served by this API"))
}

/// A page size from Relay's `first`: 1 to 100, 50 when not given.
pub(crate) fn first_of(first: Option<i32>) -> Result<usize, ServiceError> {
    match first {
        Some(n) if n < 1 => Err(ServiceError::BadRequest(format!(
            "first must be 1 to {MAX_PAGE}, not {n}"
        ))),
        Some(n) => page_size(usize::try_from(n).ok()),
        None => page_size(None),
    }
}

/// Complexity of a connection field: its page size times what each node asks for.
pub(crate) fn page_complexity(first: Option<i32>, child: usize) -> usize {
    let n = first.map_or(crate::service::DEFAULT_PAGE, |n| {
        usize::try_from(n).unwrap_or(0).min(MAX_PAGE)
    });
    n.max(1).saturating_mul(child).saturating_add(1)
}

/// The root query.
pub struct Query;

#[Object]
impl Query {
    /// Returns a list of events available for webhooks.
    async fn registerable_webhooks(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<RegisterableWebhookDescription>> {
        Ok(webhooks(ctx)?
            .event_types()
            .iter()
            .map(RegisterableWebhookDescription::of)
            .collect())
    }

    /// Get a webhook by ID; null when there is none the caller may manage.
    async fn webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook (`wh_...`).")] id: ID,
    ) -> Result<Option<WebhookObject>> {
        match webhooks(ctx)?.get(principal(ctx)?, &id).await {
            Ok(w) => Ok(Some(WebhookObject::of(w, None))),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(query_error(e)),
        }
    }

    /// A background job the caller may see (one on a webhook it manages, or one it started);
    /// null when there is none.
    async fn job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job (`job_...`).")] id: ID,
    ) -> Result<Option<JobObject>> {
        match recovery(ctx)?.job(principal(ctx)?, &id).await {
            Ok(job) => Ok(Some(JobObject::of(&job))),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(query_error(e)),
        }
    }

    /// Get a list of all webhooks matching a filter, oldest first. Webhooks are listed per
    /// App: the filter's `appId` is required.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which webhooks: `appId` is required.")] filter: Option<WebhooksFilter>,
        #[graphql(desc = "Page size, 1 to 100 (default 50).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<WebhooksConnection> {
        let filter = filter.ok_or_else(|| {
            query_error(ServiceError::BadRequest(
                "webhooks are listed per App: give filter: {appId: \"...\"}".into(),
            ))
        })?;
        let first = first_of(first).map_err(query_error)?;
        let service = webhooks(ctx)?;
        let principal = principal(ctx)?;
        let (items, has_next) = filter
            .walk(service, principal, after.as_deref(), Some(first))
            .await
            .map_err(query_error)?;
        let edges: Vec<WebhookEdge> = items
            .into_iter()
            .map(|w| WebhookEdge {
                cursor: w.id.to_string(),
                node: WebhookObject::of(w, None),
            })
            .collect();
        Ok(WebhooksConnection {
            page_info: PageInfo::of(&edges, |e| &e.cursor, has_next, after.is_some()),
            edges,
            filter,
        })
    }
}

/// Which webhooks to list.
#[derive(InputObject, Clone)]
pub struct WebhooksFilter {
    /// The App whose webhooks to list (needs `edit-app` on it).
    pub app_id: String,
    /// Only enabled (true) or disabled (false) webhooks.
    pub enabled: Option<bool>,
}

impl WebhooksFilter {
    pub(crate) fn accepts(&self, w: &Webhook) -> bool {
        self.enabled.is_none_or(|e| e == w.spec.enabled)
    }

    /// The matching webhooks after `after`, at most `first` of them (all when `None`), and
    /// whether more match after those.
    pub(crate) async fn walk(
        &self,
        service: &WebhookService,
        principal: &Principal,
        after: Option<&str>,
        first: Option<usize>,
    ) -> Result<(Vec<Webhook>, bool), ServiceError> {
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_owned);
        let fetch = first.unwrap_or(MAX_PAGE);
        loop {
            let page = service
                .list(principal, &self.app_id, cursor.as_deref(), Some(fetch))
                .await?;
            for w in page.items {
                if !self.accepts(&w) {
                    continue;
                }
                if first.is_some_and(|n| out.len() == n) {
                    return Ok((out, true));
                }
                out.push(w);
            }
            match page.next {
                // Without a filter of its own, the store's overfetch already tells.
                Some(_) if self.enabled.is_none() && first.is_some_and(|n| out.len() == n) => {
                    return Ok((out, true))
                }
                Some(next) => cursor = Some(next.0),
                None => return Ok((out, false)),
            }
        }
    }
}
