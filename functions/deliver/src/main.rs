//! The `deliver` Lambda: SQS (deliveries queue) → signed POSTs, with a partial batch response.
//! Settings: [`hookline_deliver::DeliverSettings::from_env`],
//! [`hookline_deliver::target_policy`] (`HOOKLINE_ALLOW_PRIVATE_TARGETS`) and the resources of
//! [`hookline_core::adapters::aws::AwsResources::from_env`]. Metrics: EMF lines on stdout after
//! each batch ([`hookline_core::adapters::emf`]).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookline_core::adapters::aws::AwsPorts;
use hookline_core::adapters::emf::Emf;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::adapters::lambda::{batch_response, received_messages};
use hookline_core::config::Env;
use hookline_core::target::EgressProxy;
use hookline_deliver::{target_policy, Deliver, DeliverSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = Env::process();
    let settings = DeliverSettings::from_env(&env)?;
    let http = Arc::new(ReqwestSender::with_proxy(
        target_policy(&env)?,
        &settings.user_agent,
        EgressProxy::from_env(&env)?.as_ref(),
    )?);
    let aws = AwsPorts::from_env(&env).await?;
    let deliver = Deliver::from_ports(&aws.ports, http, settings);
    let emf = Emf::install();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deliver = deliver.clone();
        async move {
            let failed = deliver
                .handle_batch(&received_messages(event.payload))
                .await;
            if let Some(emf) = &emf {
                emf.flush();
            }
            Ok::<SqsBatchResponse, Error>(batch_response(failed))
        }
    }))
    .await
}
