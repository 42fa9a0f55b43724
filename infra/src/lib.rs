//! Creates Hookline's AWS resources: the DynamoDB table (PK/SK strings, on-demand, TTL on
//! `ttl`, the `events-by-app` index), the four queues (`events`, `deliveries`, each with a DLQ and a redrive policy
//! whose `maxReceiveCount` comes from the retry policy), and the KMS key that wraps the data
//! keys sealing credentials (alias `alias/<prefix>-credentials`). [`keys`] rotates and
//! retires those data keys and reseals the table's webhooks.
//!
//! Idempotent: running it again converges the attributes instead of failing, so it serves a
//! fresh moto server in tests as well as an existing account.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use hookline_core::adapters::aws::dynamodb::{APP_DAY, APP_SEQ, EVENTS_BY_APP};
use hookline_core::adapters::aws::sqs::SqsDeliveries;
use hookline_core::adapters::aws::AwsResources;
use hookline_core::retry::RetryPolicy;
use hookline_core::rules::backstop_receive_count;

/// Partition key attribute of the table.
pub const PARTITION_KEY: &str = "PK";
/// Sort key attribute of the table.
pub const SORT_KEY: &str = "SK";
/// Attribute holding each item's expiry (epoch seconds), enforced by DynamoDB TTL.
pub const TTL_ATTRIBUTE: &str = "ttl";
/// How long a DLQ keeps a message: 14 days, SQS's maximum, to leave time for a replay.
pub const DLQ_RETENTION: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Visibility timeout of the work queues: ≥ 6 × the default 10 s function timeout (AWS's rule).
pub const QUEUE_VISIBILITY: Duration = Duration::from_secs(60);

/// Names of the table and queues, derived from one prefix (`hookline` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// DynamoDB table.
    pub table: String,
    /// Intake queue.
    pub events: String,
    /// Where events that cannot be fanned out end.
    pub events_dlq: String,
    /// One message per (event, webhook).
    pub deliveries: String,
    /// Where deliveries that exhausted their retries end.
    pub deliveries_dlq: String,
    /// The FIFO queue of ordered webhooks' deliveries (ends in `.fifo`).
    pub ordered_deliveries: String,
    /// Its FIFO dead-letter queue.
    pub ordered_deliveries_dlq: String,
    /// The KMS alias of the key wrapping the data keys.
    pub kms_alias: String,
}

impl ResourceNames {
    /// `<prefix>`, `<prefix>-events`, `<prefix>-events-dlq`, `<prefix>-deliveries`, `<prefix>-deliveries-dlq`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            table: prefix.to_owned(),
            events: format!("{prefix}-events"),
            events_dlq: format!("{prefix}-events-dlq"),
            deliveries: format!("{prefix}-deliveries"),
            deliveries_dlq: format!("{prefix}-deliveries-dlq"),
            ordered_deliveries: format!("{prefix}-deliveries-ordered.fifo"),
            ordered_deliveries_dlq: format!("{prefix}-deliveries-ordered-dlq.fifo"),
            kms_alias: format!("alias/{prefix}-credentials"),
        }
    }
}

impl Default for ResourceNames {
    fn default() -> Self {
        Self::with_prefix("hookline")
    }
}

/// What [`bootstrap`] created or found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Table name.
    pub table_name: String,
    /// `events` queue URL.
    pub events_queue_url: String,
    /// `events-dlq` queue URL.
    pub events_dlq_url: String,
    /// `deliveries` queue URL.
    pub deliveries_queue_url: String,
    /// `deliveries-dlq` queue URL.
    pub deliveries_dlq_url: String,
    /// The ordered deliveries FIFO queue's URL.
    pub ordered_deliveries_queue_url: String,
    /// Its FIFO DLQ's URL.
    pub ordered_deliveries_dlq_url: String,
    /// The KMS key wrapping the data keys (its ARN).
    pub kms_key_id: String,
}

impl Resources {
    /// The same names as the functions read them from their environment.
    pub fn aws_resources(&self) -> AwsResources {
        AwsResources {
            table: self.table_name.clone(),
            events_queue_url: self.events_queue_url.clone(),
            deliveries_queue_url: self.deliveries_queue_url.clone(),
            deliveries_dlq_url: self.deliveries_dlq_url.clone(),
            ordered_deliveries: Some((
                self.ordered_deliveries_queue_url.clone(),
                self.ordered_deliveries_dlq_url.clone(),
            )),
            kms_key_id: Some(self.kms_key_id.clone()),
        }
    }

    /// The deliveries queues (standard and FIFO, with their DLQs) as the functions use them.
    pub fn deliveries(&self, sqs: &aws_sdk_sqs::Client) -> SqsDeliveries {
        hookline_core::adapters::aws::deliveries(sqs, &self.aws_resources())
    }
}

/// A failed AWS call, with the operation and the SDK's full explanation.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A DynamoDB call failed.
    #[error("DynamoDB {operation} on {resource} failed: {message}")]
    Dynamo {
        /// The API operation.
        operation: &'static str,
        /// The table.
        resource: String,
        /// The SDK error with its context.
        message: String,
    },
    /// An SQS call failed.
    #[error("SQS {operation} on {resource} failed: {message}")]
    Sqs {
        /// The API operation.
        operation: &'static str,
        /// The queue.
        resource: String,
        /// The SDK error with its context.
        message: String,
    },
    /// A KMS call failed.
    #[error("KMS {operation} on {resource} failed: {message}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The key or alias.
        resource: String,
        /// The SDK error with its context.
        message: String,
    },
    /// The table exists with another key schema, or never became active.
    #[error("table {table}: {problem}")]
    Table {
        /// The table.
        table: String,
        /// What is wrong.
        problem: String,
    },
}

fn dynamo_err<E: std::error::Error>(
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> BootstrapError {
    let resource = resource.to_owned();
    move |e| BootstrapError::Dynamo {
        operation,
        resource,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

fn sqs_err<E: std::error::Error>(
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> BootstrapError {
    let resource = resource.to_owned();
    move |e| BootstrapError::Sqs {
        operation,
        resource,
        message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}

/// Creates (or converges) the table, the four queues and the KMS key.
pub async fn bootstrap(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    kms: &aws_sdk_kms::Client,
    names: &ResourceNames,
    policy: &RetryPolicy,
) -> Result<Resources, BootstrapError> {
    create_table(dynamo, &names.table).await?;
    let kms_key_id = kms_key(kms, &names.kms_alias).await?;
    let max_receive_count = policy.max_receive_count();
    let events_dlq_url = create_queue(sqs, &names.events_dlq, dlq_attributes()).await?;
    let deliveries_dlq_url = create_queue(sqs, &names.deliveries_dlq, dlq_attributes()).await?;
    let events_dlq_arn = queue_arn(sqs, &events_dlq_url).await?;
    let deliveries_dlq_arn = queue_arn(sqs, &deliveries_dlq_url).await?;
    let events_queue_url = create_queue(
        sqs,
        &names.events,
        work_queue_attributes(&events_dlq_arn, max_receive_count),
    )
    .await?;
    // The deliverer dead-letters by each webhook's own retry policy; redrive is a backstop.
    let backstop = backstop_receive_count(policy);
    let deliveries_queue_url = create_queue(
        sqs,
        &names.deliveries,
        work_queue_attributes(&deliveries_dlq_arn, backstop),
    )
    .await?;
    let ordered_dlq_url =
        create_queue(sqs, &names.ordered_deliveries_dlq, dlq_attributes()).await?;
    let ordered_dlq_arn = queue_arn(sqs, &ordered_dlq_url).await?;
    let ordered_deliveries_queue_url = create_queue(
        sqs,
        &names.ordered_deliveries,
        work_queue_attributes(&ordered_dlq_arn, backstop),
    )
    .await?;
    Ok(Resources {
        table_name: names.table.clone(),
        events_queue_url,
        events_dlq_url,
        deliveries_queue_url,
        deliveries_dlq_url,
        ordered_deliveries_queue_url,
        ordered_deliveries_dlq_url: ordered_dlq_url,
        kms_key_id,
    })
}

/// The ARN of the symmetric KMS key behind `alias`, created with the alias if missing.
async fn kms_key(kms: &aws_sdk_kms::Client, alias: &str) -> Result<String, BootstrapError> {
    let kms_err = |operation: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| BootstrapError::Aws {
            operation,
            resource: alias.to_owned(),
            message: e.to_string(),
        }
    };
    let found = kms.describe_key().key_id(alias).send().await;
    match found {
        Ok(out) => {
            if let Some(arn) = out.key_metadata.and_then(|m| m.arn) {
                return Ok(arn);
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) => {}
        Err(e) => {
            return Err(kms_err("DescribeKey")(
                aws_sdk_kms::error::DisplayErrorContext(e)
                    .to_string()
                    .into(),
            ))
        }
    }
    let created = kms
        .create_key()
        .description("Hookline: wraps the data keys that seal webhook credentials")
        .send()
        .await
        .map_err(|e| {
            kms_err("CreateKey")(
                aws_sdk_kms::error::DisplayErrorContext(e)
                    .to_string()
                    .into(),
            )
        })?;
    let meta = created
        .key_metadata
        .ok_or_else(|| kms_err("CreateKey")("KMS returned no key metadata".into()))?;
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .map_err(|e| {
            kms_err("CreateAlias")(
                aws_sdk_kms::error::DisplayErrorContext(e)
                    .to_string()
                    .into(),
            )
        })?;
    meta.arn
        .ok_or_else(|| kms_err("CreateKey")("KMS returned no key ARN".into()))
}

fn dlq_attributes() -> HashMap<QueueAttributeName, String> {
    HashMap::from([(
        QueueAttributeName::MessageRetentionPeriod,
        DLQ_RETENTION.as_secs().to_string(),
    )])
}

fn work_queue_attributes(
    dlq_arn: &str,
    max_receive_count: u32,
) -> HashMap<QueueAttributeName, String> {
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    HashMap::from([
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        (
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY.as_secs().to_string(),
        ),
    ])
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, BootstrapError> {
    // Create without attributes (idempotent), then set them: a re-run converges instead of
    // failing with QueueAlreadyExists when an attribute changed.
    let mut create = sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        // Only settable at creation; each delivery carries its deduplication id.
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let created = create.send().await.map_err(sqs_err("CreateQueue", name))?;
    let url = created.queue_url.ok_or_else(|| BootstrapError::Sqs {
        operation: "CreateQueue",
        resource: name.to_owned(),
        message: "answer had no QueueUrl".to_owned(),
    })?;
    sqs.set_queue_attributes()
        .queue_url(&url)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(sqs_err("SetQueueAttributes", name))?;
    tracing::info!(queue = name, url = %url, "queue ready");
    Ok(url)
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, BootstrapError> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_err("GetQueueAttributes", url))?;
    attrs
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| BootstrapError::Sqs {
            operation: "GetQueueAttributes",
            resource: url.to_owned(),
            message: "answer had no QueueArn".to_owned(),
        })
}

async fn create_table(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BootstrapError> {
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(dynamo_err("CreateTable", table))
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(dynamo_err("CreateTable", table))
    };
    // Keys only: an event's creation writes one small entry, updates of its fan-out state and
    // claim write none.
    let projection = Projection::builder()
        .projection_type(ProjectionType::KeysOnly)
        .build();
    let index = GlobalSecondaryIndex::builder()
        .index_name(EVENTS_BY_APP)
        .key_schema(key(APP_DAY, KeyType::Hash)?)
        .key_schema(key(APP_SEQ, KeyType::Range)?)
        .projection(projection.clone())
        .build()
        .map_err(dynamo_err("CreateTable", table))?;
    let created = dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attr(PARTITION_KEY)?)
        .attribute_definitions(attr(SORT_KEY)?)
        .attribute_definitions(attr(APP_DAY)?)
        .attribute_definitions(attr(APP_SEQ)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    let existed = match created {
        Ok(_) => {
            tracing::info!(table, "table created");
            false
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            tracing::info!(table, "table exists");
            true
        }
        Err(e) => return Err(dynamo_err("CreateTable", table)(e)),
    };
    wait_until_active(dynamo, table).await?;
    if existed {
        // A table made before the index: add it (DynamoDB fills it from existing items).
        let described = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(dynamo_err("DescribeTable", table))?;
        let has_index = described.table.is_some_and(|t| {
            t.global_secondary_indexes()
                .iter()
                .any(|i| i.index_name() == Some(EVENTS_BY_APP))
        });
        if !has_index {
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(EVENTS_BY_APP)
                .key_schema(key(APP_DAY, KeyType::Hash)?)
                .key_schema(key(APP_SEQ, KeyType::Range)?)
                .projection(projection)
                .build()
                .map_err(dynamo_err("UpdateTable", table))?;
            dynamo
                .update_table()
                .table_name(table)
                .attribute_definitions(attr(APP_DAY)?)
                .attribute_definitions(attr(APP_SEQ)?)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
                .send()
                .await
                .map_err(dynamo_err("UpdateTable", table))?;
            tracing::info!(table, index = EVENTS_BY_APP, "index added");
            wait_until_active(dynamo, table).await?;
        }
    }
    enable_ttl(dynamo, table).await
}

async fn wait_until_active(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BootstrapError> {
    for _ in 0..120 {
        let described = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(dynamo_err("DescribeTable", table))?;
        let Some(desc) = described.table else {
            return Err(BootstrapError::Table {
                table: table.to_owned(),
                problem: "DescribeTable returned no table".to_owned(),
            });
        };
        let keys: Vec<(&str, &KeyType)> = desc
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        if keys != [(PARTITION_KEY, &KeyType::Hash), (SORT_KEY, &KeyType::Range)] {
            return Err(BootstrapError::Table {
                table: table.to_owned(),
                problem: format!(
                    "exists with key schema {keys:?}, expected PK (hash) and SK (range)"
                ),
            });
        }
        if desc.table_status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(BootstrapError::Table {
        table: table.to_owned(),
        problem: "did not become ACTIVE within 60 s".to_owned(),
    })
}

async fn enable_ttl(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), BootstrapError> {
    let current = dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(dynamo_err("DescribeTimeToLive", table))?;
    let status = current.time_to_live_description;
    let enabled = status.as_ref().is_some_and(|d| {
        matches!(
            d.time_to_live_status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name.as_deref() == Some(TTL_ATTRIBUTE)
    });
    if enabled {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(dynamo_err("UpdateTimeToLive", table))?;
    dynamo
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(dynamo_err("UpdateTimeToLive", table))?;
    tracing::info!(table, attribute = TTL_ATTRIBUTE, "TTL enabled");
    Ok(())
}

/// The data keys that seal webhook credentials on AWS: status, reseal, rotate, retire.
pub mod keys {
    use hookline_core::adapters::aws::dynamodb::DynamoWebhookStore;
    use hookline_core::adapters::aws::kms::KmsVault;
    use hookline_core::ports::{PortError, Vault};
    use hookline_core::reseal::{key_usage, reseal, KeyUsage, ResealError};

    /// The table's webhooks and keyring, with a KMS key to wrap new data keys.
    pub struct TableKeys {
        store: DynamoWebhookStore,
        dynamo: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        kms_key_id: Option<String>,
    }

    /// Why a key command failed.
    #[derive(Debug, thiserror::Error)]
    pub enum KeysError {
        /// The store or KMS failed.
        #[error(transparent)]
        Port(#[from] PortError),
        /// The table's credentials cannot be resealed with these keys.
        #[error(transparent)]
        Reseal(#[from] ResealError),
        /// Refused.
        #[error("{0}")]
        Refused(String),
    }

    /// What `status` reports.
    #[derive(Debug)]
    pub struct KeysStatus {
        /// The active key, if any.
        pub active: Option<String>,
        /// Every key in the keyring item.
        pub keys: Vec<String>,
        /// How many webhooks use each key.
        pub usage: KeyUsage,
    }

    impl TableKeys {
        /// The keys of `table`; new data keys are wrapped with `kms_key_id`.
        pub fn new(
            dynamo: aws_sdk_dynamodb::Client,
            kms: aws_sdk_kms::Client,
            table: &str,
            kms_key_id: Option<String>,
        ) -> Self {
            Self {
                store: DynamoWebhookStore::new(dynamo.clone(), table),
                dynamo,
                kms,
                table: table.to_owned(),
                kms_key_id,
            }
        }

        /// A vault with nothing cached (what a rotation just wrote is read).
        fn vault(&self) -> KmsVault {
            KmsVault::new(
                self.dynamo.clone(),
                self.kms.clone(),
                &self.table,
                self.kms_key_id.clone(),
            )
        }

        /// The keyring item's keys and which webhooks use which.
        pub async fn status(&self) -> Result<KeysStatus, KeysError> {
            let wrapped = self.vault().read().await?;
            let mut keys: Vec<String> = wrapped.keys.keys().cloned().collect();
            keys.sort();
            Ok(KeysStatus {
                active: wrapped.active,
                keys,
                usage: key_usage(&self.store).await?,
            })
        }

        /// Seals every plaintext credential (a table written before sealing) and reseals
        /// every one not under the active key; makes the first data key if there is none.
        pub async fn reseal(&self) -> Result<KeyUsage, KeysError> {
            let keys = self.vault().keyring().await?;
            Ok(reseal(&self.store, &keys).await?)
        }

        /// A new data key from KMS becomes the active one; every webhook is resealed under
        /// it. Returns the new key's id and what was resealed.
        pub async fn rotate(&self) -> Result<(String, KeyUsage), KeysError> {
            let vault = self.vault();
            let (id, _, wrapped) = vault.generate().await?;
            let existing = !vault.read().await?.keys.is_empty();
            if !vault.add_active(&id, &wrapped, !existing).await? {
                return Err(KeysError::Refused(
                    "the keyring item changed while rotating: run it again".into(),
                ));
            }
            let usage = self.reseal().await?;
            Ok((id.to_string(), usage))
        }

        /// Removes key `id` once no webhook is sealed under it (never the active key).
        pub async fn retire(&self, id: &str) -> Result<(), KeysError> {
            let wrapped = self.vault().read().await?;
            if wrapped.active.as_deref() == Some(id) {
                return Err(KeysError::Refused(format!(
                    "{id} is the active key: rotate first, then retire it"
                )));
            }
            if !wrapped.keys.contains_key(id) {
                return Err(KeysError::Refused(format!("the keyring holds no key {id}")));
            }
            let usage = key_usage(&self.store).await?;
            if let Some(n) = usage.by_key.get(id).filter(|n| **n > 0) {
                return Err(KeysError::Refused(format!(
                    "{n} webhooks are still sealed with {id}: reseal first"
                )));
            }
            self.vault().remove(id).await?;
            Ok(())
        }
    }
}
