//! An empty Lambda function: the cold-start benchmark's reference (`hookline bench
//! cold-start`). It sets up logging as Hookline's functions do and returns its event, so the
//! difference to `api`, `ingest` and `deliver` is what Hookline itself adds.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
