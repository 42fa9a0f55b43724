//! The AWS composition: the DynamoDB adapters (one table), the SQS adapters, the SDK
//! configuration the Lambdas share, and [`AwsPorts`], which turns a table name and queue URLs
//! into every port. The three Lambdas, the moto-backed tests and the benchmarks all wire
//! themselves through it.

use std::sync::Arc;

use crate::config::{Env, SettingError};
use crate::ports::{DeadLetters, Ports};
use crate::urn::Namespace;

#[cfg(feature = "destinations")]
pub mod destinations;
pub mod dynamodb;
pub mod kms;
pub mod sdk;
pub mod sqs;

use dynamodb::{
    DynamoAttemptLog, DynamoEventLog, DynamoGrantStore, DynamoJobStore, DynamoRateLimiter,
    DynamoWebhookStore,
};
use kms::{KmsClient, KmsVault};
use sqs::{SqsDeliveries, SqsQueue};

/// Where a deployment keeps its data on AWS: the table and the queues' URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    /// The DynamoDB table (`HOOKLINE_TABLE`).
    pub table: String,
    /// The `events` queue (`HOOKLINE_EVENTS_QUEUE_URL`).
    pub events_queue_url: String,
    /// The `deliveries` queue (`HOOKLINE_DELIVERIES_QUEUE_URL`).
    pub deliveries_queue_url: String,
    /// Its DLQ (`HOOKLINE_DELIVERIES_DLQ_URL`).
    pub deliveries_dlq_url: String,
    /// The FIFO deliveries queue and its FIFO DLQ, for ordered webhooks
    /// (`HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL`, `HOOKLINE_ORDERED_DELIVERIES_DLQ_URL`).
    pub ordered_deliveries: Option<(String, String)>,
    /// The KMS key that wraps the data keys sealing credentials (`HOOKLINE_KMS_KEY_ID`; the
    /// api needs it to make the first data key, the others only unwrap).
    pub kms_key_id: Option<String>,
}

impl AwsResources {
    /// The resources named by the `HOOKLINE_*` variables `template.yaml` sets.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            table: env.required("HOOKLINE_TABLE")?,
            events_queue_url: env.required("HOOKLINE_EVENTS_QUEUE_URL")?,
            deliveries_queue_url: env.required("HOOKLINE_DELIVERIES_QUEUE_URL")?,
            deliveries_dlq_url: env.required("HOOKLINE_DELIVERIES_DLQ_URL")?,
            ordered_deliveries: match env.get("HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL") {
                None => None,
                Some(fifo) => Some((
                    fifo.to_owned(),
                    env.required("HOOKLINE_ORDERED_DELIVERIES_DLQ_URL")?,
                )),
            },
            kms_key_id: env.get("HOOKLINE_KMS_KEY_ID").map(str::to_owned),
        })
    }
}

/// The AWS composition: the clients, the resources and every port over them.
#[derive(Clone)]
pub struct AwsPorts {
    /// The DynamoDB client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The KMS client (built on first use in the Lambdas).
    pub kms: KmsClient,
    /// The table and queues.
    pub resources: AwsResources,
    /// Every port, for the handlers.
    pub ports: Ports,
}

impl AwsPorts {
    /// Every port over `resources` with these clients.
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        kms: impl Into<KmsClient>,
        resources: AwsResources,
        namespace: Namespace,
    ) -> Self {
        let kms = kms.into();
        let table = &resources.table;
        let ports = Ports {
            webhooks: Arc::new(DynamoWebhookStore::new(dynamo.clone(), table)),
            grants: Arc::new(DynamoGrantStore::new(dynamo.clone(), table)),
            events: Arc::new(DynamoEventLog::new(dynamo.clone(), table)),
            attempts: Arc::new(DynamoAttemptLog::new(dynamo.clone(), table)),
            jobs: Arc::new(DynamoJobStore::new(dynamo.clone(), table)),
            event_queue: Arc::new(SqsQueue::new(sqs.clone(), &resources.events_queue_url)),
            deliveries: Arc::new(deliveries(&sqs, &resources)),
            // DynamoDB and SQS share no transaction: claim, send, mark.
            fan_out_commit: None,
            rate_limiter: Arc::new(DynamoRateLimiter::new(dynamo.clone(), table)),
            vault: Arc::new(KmsVault::new(
                dynamo.clone(),
                kms.clone(),
                table,
                resources.kms_key_id.clone(),
            )),
            destinations: None,
            namespace,
        };
        Self {
            dynamo,
            sqs,
            kms,
            resources,
            ports,
        }
    }

    /// The Lambdas' composition: the shared SDK configuration ([`sdk::config`]), the
    /// resources and the namespace from `env`.
    pub async fn from_env(env: &Env) -> Result<Self, SettingError> {
        let resources = AwsResources::from_env(env)?;
        let namespace = env.namespace()?;
        let aws = sdk::config().await;
        let composed = Self::new(
            aws_sdk_dynamodb::Client::new(&aws),
            aws_sdk_sqs::Client::new(&aws),
            KmsClient::lazy(aws.clone()),
            resources,
            namespace,
        );
        #[cfg(feature = "destinations")]
        let composed = composed.with_destinations(aws);
        Ok(composed)
    }

    /// Delivers to AWS destinations over `config` (no client is built until one is used),
    /// each call bounded by [`destinations::CALL_TIMEOUT`].
    #[cfg(feature = "destinations")]
    pub fn with_destinations(mut self, config: aws_config::SdkConfig) -> Self {
        self.ports.destinations = Some(Arc::new(destinations::AwsDestinations::new(
            config,
            destinations::CALL_TIMEOUT,
        )));
        self
    }

    /// The dead-letter queue at `url` (the `events-dlq`, where ingest puts events it can never
    /// process; only `ingest` is given its URL).
    pub fn dead_letters(&self, url: &str) -> Arc<dyn DeadLetters> {
        Arc::new(SqsQueue::new(self.sqs.clone(), url))
    }

    /// The vault as its concrete adapter (the bootstrap command rotates keys with it).
    pub fn vault(&self) -> KmsVault {
        KmsVault::new(
            self.dynamo.clone(),
            self.kms.clone(),
            &self.resources.table,
            self.resources.kms_key_id.clone(),
        )
    }

    /// The deliveries queues as their concrete adapter (tests and benchmarks read them).
    pub fn deliveries(&self) -> SqsDeliveries {
        deliveries(&self.sqs, &self.resources)
    }
}

/// The deliveries queues of `r`: the standard pair, and the FIFO pair where configured.
pub fn deliveries(sqs: &aws_sdk_sqs::Client, r: &AwsResources) -> SqsDeliveries {
    let q = |url: &str| SqsQueue::new(sqs.clone(), url);
    let standard = SqsDeliveries::new(q(&r.deliveries_queue_url), q(&r.deliveries_dlq_url));
    match &r.ordered_deliveries {
        Some((fifo, dlq)) => standard.with_ordered(q(fifo), q(dlq)),
        None => standard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_templates_variables() {
        let env = Env::from_pairs([
            ("HOOKLINE_TABLE", "t"),
            ("HOOKLINE_EVENTS_QUEUE_URL", "e"),
            ("HOOKLINE_DELIVERIES_QUEUE_URL", "d"),
            ("HOOKLINE_DELIVERIES_DLQ_URL", "dd"),
            ("HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL", "o.fifo"),
        ]);
        let e = AwsResources::from_env(&env).expect_err("the FIFO DLQ is missing");
        assert_eq!(e.name, "HOOKLINE_ORDERED_DELIVERIES_DLQ_URL");
        let env = Env::from_pairs([
            ("HOOKLINE_TABLE", "t"),
            ("HOOKLINE_EVENTS_QUEUE_URL", "e"),
            ("HOOKLINE_DELIVERIES_QUEUE_URL", "d"),
            ("HOOKLINE_DELIVERIES_DLQ_URL", "dd"),
        ]);
        let r = AwsResources::from_env(&env).expect("enough");
        assert_eq!((r.table.as_str(), r.ordered_deliveries), ("t", None));
    }
}
