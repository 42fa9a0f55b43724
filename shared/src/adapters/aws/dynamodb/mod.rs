//! The DynamoDB adapter : one table, `PK=WH#<id> SK=META` for the webhook and
//! `PK=APP#<appId> SK=WH#<id>` route items, written together in one `TransactWriteItems`.
//!
//! Route items carry the whole webhook document, so fan-out for an event is one Query on
//! its App and a listing needs no second read.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use crate::adapters::record::{from_document, to_document};
use crate::delivery::{Attempt, AttemptStatus, DeliveryId};
use crate::event::{Event, EventId};
use crate::ports::{
    AttemptLog, Cursor, EventClaim, EventLog, GrantStore, LoggedEvent, Page, PortError,
    RateLimiter, RevokedGrant, WebhookStore,
};
use crate::rules::RateLimit;
use crate::timestamp::{from_unix_ms, unix_ms};
use crate::webhook::{FailureRun, Route, Webhook, WebhookId};
use time::OffsetDateTime;

mod attempts;
mod events;
mod grants;
mod jobs;
mod rate_limit;
mod webhooks;

pub use attempts::{DynamoAttemptLog, DELIVERY_SEARCH_PAGES};
pub use events::{DynamoEventLog, APP_DAY, APP_SEQ, EVENTS_BY_APP};
pub use grants::DynamoGrantStore;
pub use jobs::DynamoJobStore;
pub use rate_limit::DynamoRateLimiter;
pub use webhooks::DynamoWebhookStore;

const META: &str = "META";
/// Sort key of an App's route version item (`PK=APP#<appId>`), beside its `WH#` route items.
const VERSION: &str = "VERSION";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Items of one `BatchWriteItem` request at most (DynamoDB's limit).
const BATCH_WRITE_ITEMS: usize = 25;
/// Rounds of resending what a `BatchWriteItem` left unprocessed (throttling) before giving up.
const BATCH_WRITE_ROUNDS: u32 = 8;

/// Runs `requests` (puts, deletes) with `BatchWriteItem`, 25 a request, resending what
/// DynamoDB leaves unprocessed with a growing pause.
async fn batch_write(
    client: &Client,
    table: &str,
    mut requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> Result<(), PortError> {
    let mut round = 0;
    while !requests.is_empty() {
        let chunk: Vec<_> = requests
            .drain(..requests.len().min(BATCH_WRITE_ITEMS))
            .collect();
        let out = client
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .map_err(unavailable)?;
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(table))
            .unwrap_or_default();
        if !unprocessed.is_empty() {
            round += 1;
            if round > BATCH_WRITE_ROUNDS {
                return Err(PortError::Unavailable(
                    format!(
                        "DynamoDB left {} items unprocessed {BATCH_WRITE_ROUNDS} times",
                        unprocessed.len()
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << round.min(6))).await;
            requests.extend(unprocessed);
        }
    }
    Ok(())
}

/// Deletes the items with these `(PK, SK)` keys through [`batch_write`].
async fn batch_delete(
    client: &Client,
    table: &str,
    keys: impl IntoIterator<Item = (String, String)>,
) -> Result<(), PortError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let requests = keys
        .into_iter()
        .map(|(pk, sk)| {
            DeleteRequest::builder()
                .key("PK", s(pk))
                .key("SK", s(sk))
                .build()
                .map(|delete| WriteRequest::builder().delete_request(delete).build())
                .map_err(build_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    batch_write(client, table, requests).await
}

fn webhook_pk(id: &str) -> String {
    format!("WH#{id}")
}

fn app_pk(app: &str) -> String {
    format!("APP#{app}")
}

fn unavailable<E>(e: aws_sdk_dynamodb::error::SdkError<E>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    PortError::Unavailable(
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
            .to_string()
            .into(),
    )
}

/// A conditional write's result: `Some` when it went through, `None` when its condition
/// failed, an error otherwise.
fn unless_condition_failed<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E>>,
) -> Result<Option<O>, PortError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.code() == Some("ConditionalCheckFailedException")) =>
        {
            Ok(None)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Runs a `TransactWriteItems`: `true` when it went through, `false` when a condition
/// cancelled it, an error otherwise.
async fn transact(client: &Client, items: Vec<TransactWriteItem>) -> Result<bool, PortError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_transaction_canceled_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Corrupt(format!("building a DynamoDB request: {e}"))
}

fn doc_of(item: &HashMap<String, AttributeValue>) -> Result<&str, PortError> {
    match item.get("doc") {
        Some(AttributeValue::S(doc)) => Ok(doc),
        _ => Err(PortError::Corrupt("item has no doc attribute".into())),
    }
}

fn from_epoch_ms(ms: &str) -> Result<OffsetDateTime, PortError> {
    ms.parse::<i64>()
        .ok()
        .and_then(from_unix_ms)
        .ok_or_else(|| PortError::Corrupt(format!("stored time {ms} is not epoch milliseconds")))
}
