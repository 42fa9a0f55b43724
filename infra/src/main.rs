//! `hookline-bootstrap [PREFIX]`: creates the table and queues named from PREFIX (default
//! `hookline`, or `HOOKLINE_RESOURCE_PREFIX`) in the account or emulator that the standard AWS
//! environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`) points at, and prints their
//! names and URLs as JSON.

use aws_config::BehaviorVersion;
use hookline_core::retry::RetryPolicy;
use hookline_infra::{bootstrap, ResourceNames};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let prefix = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HOOKLINE_RESOURCE_PREFIX").ok())
        .unwrap_or_else(|| "hookline".to_owned());
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names = ResourceNames::with_prefix(&prefix);
    match bootstrap(&dynamo, &sqs, &names, &RetryPolicy::default()).await {
        Ok(resources) => match serde_json::to_string_pretty(&resources) {
            Ok(json) => {
                println!("{json}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hookline-bootstrap: cannot print the result: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("hookline-bootstrap: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
