//! The `ingest` Lambda: SQS (events queue) → fan-out → deliveries queue, with a partial
//! batch response. Settings: [`hookline_ingest::IngestSettings::from_env`], the resources of
//! [`hookline_core::adapters::aws::AwsResources::from_env`] and `HOOKLINE_EVENTS_DLQ_URL`
//! (the events DLQ: only ingest dead-letters events). Metrics: EMF lines on stdout after each
//! batch ([`hookline_core::adapters::emf`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookline_core::adapters::aws::AwsPorts;
use hookline_core::adapters::emf::Emf;
use hookline_core::adapters::lambda::{batch_response, received_messages};
use hookline_core::config::Env;
use hookline_ingest::{Ingest, IngestSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = Env::process();
    let settings = IngestSettings::from_env(&env)?;
    let aws = AwsPorts::from_env(&env).await?;
    let dead_letters = aws.dead_letters(&env.required("HOOKLINE_EVENTS_DLQ_URL")?);
    hookline_core::telemetry::set_app_label(settings.metrics_app_label);
    let ingest = Ingest::from_ports(&aws.ports, dead_letters, settings);
    let emf = Emf::install();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let ingest = ingest.clone();
        async move {
            let failed = ingest.handle_batch(&received_messages(event.payload)).await;
            if let Some(emf) = &emf {
                emf.flush();
            }
            Ok::<SqsBatchResponse, Error>(batch_response(failed))
        }
    }))
    .await
}
