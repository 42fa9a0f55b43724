//! `hookline-bootstrap [PREFIX]`: creates the table and queues named from PREFIX (default
//! `hookline`, or `HOOKLINE_RESOURCE_PREFIX`) in the account or emulator that the standard AWS
//! environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`) points at, and prints their
//! names and URLs as JSON.

use aws_config::BehaviorVersion;
use clap::Parser;
use hookline_core::retry::RetryPolicy;
use hookline_infra::{bootstrap, ResourceNames};

/// Creates (or converges) Hookline's DynamoDB table and SQS queues with their DLQs, where the
/// standard AWS environment points (a real account, or moto through AWS_ENDPOINT_URL), and
/// prints their names and URLs as JSON.
#[derive(Debug, Parser)]
#[command(name = "hookline-bootstrap", version)]
struct Args {
    /// Names the table PREFIX and the queues PREFIX-events, PREFIX-deliveries and their -dlq.
    #[arg(env = "HOOKLINE_RESOURCE_PREFIX", default_value = "hookline")]
    prefix: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let prefix = Args::parse().prefix;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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
