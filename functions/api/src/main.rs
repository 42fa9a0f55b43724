//! The `api` Lambda: API Gateway HTTP API (payload v2) → the REST and GraphQL API, on DynamoDB
//! and SQS. Settings: [`hookline_api::settings::Settings::from_env`] and the resources of
//! [`hookline_core::adapters::aws::AwsResources::from_env`]. Metrics: EMF lines on stdout after
//! each request ([`hookline_core::adapters::emf`]).

use std::sync::Arc;

use hookline_api::auth::with_auth;
use hookline_api::lambda::ApiGatewayClaims;
use hookline_api::settings::{permissions_claim, Settings};
use hookline_api::Api;
use hookline_core::adapters::aws::AwsPorts;
use hookline_core::adapters::emf::Emf;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::config::Env;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = Env::process();
    let settings = Settings::from_env(&env, false)?;
    let aws = AwsPorts::from_env(&env).await?;
    let http = Arc::new(ReqwestSender::with_proxy(
        settings.targets,
        &settings.user_agent,
        settings.egress_proxy.as_ref(),
    )?);
    hookline_core::telemetry::set_app_label(settings.metrics_app_label);
    let api = Api::from_ports(&aws.ports, http, settings, None);
    let claims = ApiGatewayClaims::new(permissions_claim(&env));
    let routes = match Emf::install() {
        // What a request recorded is written once its answer is ready.
        Some(emf) => api.routes().layer(axum::middleware::map_response(
            move |response: axum::response::Response| async move {
                emf.flush();
                response
            },
        )),
        None => api.routes(),
    };
    lambda_http::run(with_auth(routes, claims)).await
}
