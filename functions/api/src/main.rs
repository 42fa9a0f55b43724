//! The `api` Lambda: API Gateway HTTP API (payload v2) → the routes, on DynamoDB.

use std::sync::Arc;

use hookline_api::{config, lambda, routes::Router, service::WebhookService};
use hookline_core::http::ReqwestSender;
use hookline_core::store::dynamodb::DynamoWebhookStore;
use lambda_http::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = config::settings_from_env(false)?;
    let claim = config::permissions_claim();
    let table = std::env::var("HOOKLINE_TABLE").map_err(|_| "HOOKLINE_TABLE is not set")?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoWebhookStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        table,
    ));
    let http = Arc::new(ReqwestSender::new(settings.targets, &settings.user_agent)?);
    let router = Router::new(WebhookService::new(store, http, settings));
    lambda_http::run(service_fn(|request: lambda_http::Request| {
        let caller = lambda::caller_from_context(&request, &claim);
        let router = router.clone();
        async move {
            Ok::<_, Error>(lambda::from_http(
                router.handle(lambda::into_http(request), caller).await,
            ))
        }
    }))
    .await
}
