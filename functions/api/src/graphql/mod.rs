//! The GraphQL API (`POST /graphql`, and `POST /` as the same endpoint): the platform's
//! documented webhook schema (`registerWebhook`, `updateWebhook`, `deleteWebhook`, ...) with
//! `async-graphql`, over the same [`WebhookService`] and [`DeliveriesService`] as REST, so
//! validation, authorization and storage stay in one place. The HTTP side (401, 413, 415,
//! batching refused) is in [`crate::rest`]; the SDL is checked in as
//! `functions/api/schema.graphql`, and a test keeps it equal to [`sdl`].

mod errors;
mod mutation;
mod objects;
mod query;

use std::sync::{Arc, OnceLock};

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use hookline_core::auth::Principal;

pub use errors::{graphql_field, refusal, Refusal};
pub use mutation::Mutation;
pub use query::Query;

use crate::deliveries::DeliveriesService;
use crate::recovery::RecoveryService;
use crate::service::WebhookService;

/// The schema's type.
pub type HooklineSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection accepted; the standard introspection query fits.
pub const MAX_DEPTH: usize = 16;
/// Largest query complexity accepted: a field counts 1, a connection its page size times its
/// nodes' selection. A page of 50 webhooks with a few fields of their 20 latest deliveries
/// passes; 100 webhooks with 100 deliveries each is refused.
pub const MAX_COMPLEXITY: usize = 10_000;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
}

/// The schema in GraphQL SDL, as served (introspection shows the same).
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().use_space_ident().indent_width(2))
}

/// The GraphQL API bound to its services. The schema is built on the first request, keeping
/// its registry out of the Lambda's init for callers of REST.
#[derive(Clone)]
pub struct GraphQl {
    webhooks: WebhookService,
    deliveries: DeliveriesService,
    recovery: Option<RecoveryService>,
    schema: Arc<OnceLock<HooklineSchema>>,
}

impl GraphQl {
    /// The API over the webhook and deliveries services.
    pub fn new(webhooks: WebhookService, deliveries: DeliveriesService) -> Self {
        Self {
            webhooks,
            deliveries,
            recovery: None,
            schema: Arc::new(OnceLock::new()),
        }
    }

    /// Also serves recover and background jobs.
    pub fn with_recovery(mut self, recovery: Option<RecoveryService>) -> Self {
        self.recovery = recovery;
        self
    }

    /// Runs one operation as `principal`.
    #[tracing::instrument(skip_all, fields(sub = %principal.sub, operation = request.operation_name.as_deref().unwrap_or("")))]
    pub async fn execute(
        &self,
        principal: Principal,
        request: async_graphql::Request,
    ) -> async_graphql::Response {
        let schema = self.schema.get_or_init(|| {
            let mut schema = builder()
                .data(self.webhooks.clone())
                .data(self.deliveries.clone());
            if let Some(recovery) = &self.recovery {
                schema = schema.data(recovery.clone());
            }
            schema.finish()
        });
        let response = schema.execute(request.data(principal)).await;
        let errors: Vec<&str> = response.errors.iter().map(|e| e.message.as_str()).collect();
        tracing::info!(?errors, "graphql operation answered");
        response
    }
}
