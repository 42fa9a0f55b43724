//! `hookline-bootstrap [PREFIX]`: creates the table, queues and KMS key named from PREFIX
//! (default `hookline`, or `HOOKLINE_RESOURCE_PREFIX`) in the account or emulator that the
//! standard AWS environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`) points at, and
//! prints their names and URLs as JSON. `hookline-bootstrap keys …` manages the data keys
//! that seal webhook credentials in a deployed table.

use aws_config::BehaviorVersion;
use clap::{Parser, Subcommand};
use hookline_core::retry::RetryPolicy;
use hookline_infra::keys::TableKeys;
use hookline_infra::{bootstrap, ResourceNames};

/// Creates (or converges) Hookline's DynamoDB table, SQS queues with their DLQs, and the KMS
/// key wrapping its data keys, where the standard AWS environment points (a real account, or
/// moto through AWS_ENDPOINT_URL), and prints their names and URLs as JSON.
#[derive(Debug, Parser)]
#[command(
    name = "hookline-bootstrap",
    version,
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Names the table PREFIX and the queues PREFIX-events, PREFIX-deliveries and their -dlq.
    #[arg(env = "HOOKLINE_RESOURCE_PREFIX", default_value = "hookline")]
    prefix: String,
    /// Key management instead of creating resources.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The data keys that seal signing secrets and custom header values in the table.
    Keys {
        /// The table (`HOOKLINE_TABLE`, as the functions read it).
        #[arg(long, env = "HOOKLINE_TABLE")]
        table: String,
        /// The KMS key wrapping new data keys (`HOOKLINE_KMS_KEY_ID`: ARN, id or alias).
        #[arg(long, env = "HOOKLINE_KMS_KEY_ID")]
        kms_key_id: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// The keys, and how many webhooks are sealed under each.
    Status,
    /// Seal what is still plaintext (a table from before sealing) and reseal what is not
    /// under the active key. Idempotent and resumable: run it after deploying.
    Reseal,
    /// Make a new data key the active one and reseal every webhook under it.
    Rotate,
    /// Remove a data key once nothing is sealed under it.
    Retire {
        /// The key's id (`k` and 16 hex digits).
        key_id: String,
    },
}

async fn keys(
    config: &aws_config::SdkConfig,
    table: &str,
    kms_key_id: Option<String>,
    action: KeysAction,
) -> Result<String, String> {
    let keys = TableKeys::new(
        aws_sdk_dynamodb::Client::new(config),
        aws_sdk_kms::Client::new(config),
        table,
        kms_key_id,
    );
    let summary = |u: &hookline_core::reseal::KeyUsage| {
        let mut s = format!("{} of {} webhooks resealed", u.resealed, u.webhooks);
        if !u.unreadable.is_empty() {
            s.push_str(&format!(
                "; credentials of {} do not open (altered): {}",
                u.unreadable.len(),
                u.unreadable.join(", ")
            ));
        }
        s
    };
    match action {
        KeysAction::Status => {
            let status = keys.status().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for id in &status.keys {
                let role = if status.active.as_deref() == Some(id) {
                    "active "
                } else {
                    "       "
                };
                let n = status.usage.by_key.get(id).copied().unwrap_or(0);
                out.push(format!("{role}{id}  {n} webhooks"));
            }
            for (id, n) in &status.usage.by_key {
                if !status.keys.contains(id) {
                    out.push(format!("MISSING {id}  {n} webhooks"));
                }
            }
            out.push(format!("{} webhooks in {table}", status.usage.webhooks));
            Ok(out.join("\n"))
        }
        KeysAction::Reseal => keys
            .reseal()
            .await
            .map(|u| summary(&u))
            .map_err(|e| e.to_string()),
        KeysAction::Rotate => keys
            .rotate()
            .await
            .map(|(id, u)| format!("new active key {id}; {}", summary(&u)))
            .map_err(|e| e.to_string()),
        KeysAction::Retire { key_id } => keys
            .retire(&key_id)
            .await
            .map(|()| format!("key {key_id} retired"))
            .map_err(|e| e.to_string()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let result = match args.command {
        Some(Command::Keys {
            table,
            kms_key_id,
            action,
        }) => keys(&config, &table, kms_key_id, action).await,
        None => {
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            let kms = aws_sdk_kms::Client::new(&config);
            let names = ResourceNames::with_prefix(&args.prefix);
            match bootstrap(&dynamo, &sqs, &kms, &names, &RetryPolicy::default()).await {
                Ok(resources) => serde_json::to_string_pretty(&resources)
                    .map_err(|e| format!("cannot print the result: {e}")),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match result {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hookline-bootstrap: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
