//! The DynamoDB adapter (DESIGN §6): one table, `PK=WH#<id> SK=META` for the webhook and
//! `PK=APP#<appId> SK=WH#<id>` route items, written together in one `TransactWriteItems`.
//!
//! Route items carry the whole webhook document, so fan-out for an event is one Query on
//! its App and a listing needs no second read.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{from_document, to_document};
use crate::event::{Event, EventId};
use crate::lifecycle::FailureRun;
use crate::millis::{from_unix_ms, unix_ms};
use crate::ports::{
    Attempt, AttemptLog, AttemptStatus, Cursor, DeliveryId, EventClaim, EventLog, GrantStore, Page,
    PortError, RateLimiter, RevokedGrant, WebhookStore,
};
use crate::rules::RateLimit;
use crate::webhook::{Route, Webhook, WebhookId};
use time::OffsetDateTime;

const META: &str = "META";
/// Sort key of an App's route version item (`PK=APP#<appId>`), beside its `WH#` route items.
const VERSION: &str = "VERSION";

/// The webhook store on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoWebhookStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
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

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Corrupt(format!("building a DynamoDB request: {e}"))
}

fn doc_of(item: &HashMap<String, AttributeValue>) -> Result<&str, PortError> {
    match item.get("doc") {
        Some(AttributeValue::S(doc)) => Ok(doc),
        _ => Err(PortError::Corrupt("item has no doc attribute".into())),
    }
}

impl DynamoWebhookStore {
    /// The store on `table`, through `client` (endpoint and credentials from its config).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn item(&self, pk: String, sk: String, webhook: &Webhook, doc: &str) -> PutBuilder {
        Put::builder()
            .table_name(&self.table)
            .item("PK", s(pk))
            .item("SK", s(sk))
            .item("version", AttributeValue::N(webhook.version.to_string()))
            .item("doc", s(doc))
    }

    fn route_puts(
        &self,
        webhook: &Webhook,
        doc: &str,
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        webhook
            .spec
            .app_ids()
            .into_iter()
            .map(|app| {
                let put = self
                    .item(app_pk(app), webhook_pk(webhook.id.as_str()), webhook, doc)
                    .build()
                    .map_err(build_err)?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    fn route_delete(&self, app: &str, id: &WebhookId) -> Result<TransactWriteItem, PortError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("PK", s(app_pk(app)))
            .key("SK", s(webhook_pk(id.as_str())))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, PortError> {
        match self
            .client
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

    /// A failed condition means the item changed or vanished; tell which.
    async fn conflict_or_missing(&self, id: &WebhookId, expected: u64) -> PortError {
        match self.get(id).await {
            Ok(None) => PortError::NotFound(id.to_string()),
            Ok(Some(_)) => PortError::VersionConflict { expected },
            Err(e) => e,
        }
    }

    /// Moves the route version of each App (after a write naming them committed). A failure
    /// is logged, not returned: the write stands, and route caches see it within their
    /// maximum age (`ROUTE_CACHE_MAX_AGE` in ingest) or at the App's next write.
    async fn bump_versions<'a>(&self, apps: impl IntoIterator<Item = &'a str>) {
        // One after another: a webhook usually names one App.
        for app in apps {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(app_pk(app)))
                .key("SK", s(VERSION))
                .update_expression("ADD v :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .send()
                .await;
            if let Err(e) = out {
                tracing::warn!(app_id = app, error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "the App's route version could not be moved; route caches catch up within their maximum age");
            }
        }
    }

    async fn query_app(
        &self,
        app_id: &str,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<(Vec<Webhook>, Option<HashMap<String, AttributeValue>>), PortError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :wh)")
            .expression_attribute_values(":pk", s(app_pk(app_id)))
            .expression_attribute_values(":wh", s("WH#"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .set_limit(limit)
            .send()
            .await
            .map_err(unavailable)?;
        let webhooks = out
            .items()
            .iter()
            .map(|item| doc_of(item).and_then(from_document))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((webhooks, out.last_evaluated_key))
    }
}

#[async_trait]
impl WebhookStore for DynamoWebhookStore {
    async fn create(&self, webhook: &Webhook) -> Result<(), PortError> {
        let doc = to_document(webhook)?;
        let meta = self
            .item(webhook_pk(webhook.id.as_str()), META.into(), webhook, &doc)
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().put(meta).build()];
        items.extend(self.route_puts(webhook, &doc)?);
        if self.transact(items).await? {
            self.bump_versions(webhook.spec.app_ids()).await;
            Ok(())
        } else {
            Err(PortError::AlreadyExists(webhook.id.to_string()))
        }
    }

    async fn get(&self, id: &WebhookId) -> Result<Option<Webhook>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(id.as_str())))
            .key("SK", s(META))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let mut webhook = from_document(doc_of(&item)?)?;
        webhook.state.failures = failure_run(&item)?;
        Ok(Some(webhook))
    }

    async fn record_failure(
        &self,
        id: &WebhookId,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<Option<FailureRun>, PortError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(id.as_str())))
            .key("SK", s(META))
            .update_expression(
                "SET failures = if_not_exists(failures, :zero) + :one, \
                 failingSince = if_not_exists(failingSince, :at), lastFailure = :error",
            )
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":at", AttributeValue::N(unix_ms(at).to_string()))
            .expression_attribute_values(":error", s(error))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        // A failed condition: the webhook is gone.
        match unless_condition_failed(out)?.and_then(|out| out.attributes) {
            Some(item) => failure_run(&item),
            None => Ok(None),
        }
    }

    async fn clear_failures(&self, id: &WebhookId) -> Result<(), PortError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(id.as_str())))
            .key("SK", s(META))
            .update_expression("REMOVE failures, failingSince, lastFailure")
            .condition_expression("attribute_exists(failingSince)")
            .send()
            .await;
        // A failed condition: no run going on (or no webhook), nothing to end.
        unless_condition_failed(out).map(|_| ())
    }

    async fn update(&self, webhook: &Webhook, expected_version: u64) -> Result<(), PortError> {
        let current = self
            .get(&webhook.id)
            .await?
            .ok_or_else(|| PortError::NotFound(webhook.id.to_string()))?;
        let doc = to_document(webhook)?;
        // An Update, not a Put: the failure run's attributes beside the document stay.
        let meta = Update::builder()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(webhook.id.as_str())))
            .key("SK", s(META))
            .update_expression("SET version = :version, doc = :doc")
            .condition_expression("version = :expected")
            .expression_attribute_values(":version", AttributeValue::N(webhook.version.to_string()))
            .expression_attribute_values(":doc", s(doc.clone()))
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().update(meta).build()];
        items.extend(self.route_puts(webhook, &doc)?);
        let next_apps = webhook.spec.app_ids();
        let old_apps: BTreeSet<&str> = current.spec.app_ids();
        for app in old_apps.difference(&next_apps) {
            items.push(self.route_delete(app, &webhook.id)?);
        }
        if self.transact(items).await? {
            let touched: Vec<&str> = old_apps.union(&next_apps).copied().collect();
            self.bump_versions(touched).await;
            Ok(())
        } else {
            Err(self
                .conflict_or_missing(&webhook.id, expected_version)
                .await)
        }
    }

    async fn delete(&self, id: &WebhookId, expected_version: u64) -> Result<(), PortError> {
        let current = self
            .get(id)
            .await?
            .ok_or_else(|| PortError::NotFound(id.to_string()))?;
        let meta = Delete::builder()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(id.as_str())))
            .key("SK", s(META))
            .condition_expression("version = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().delete(meta).build()];
        for app in current.spec.app_ids() {
            items.push(self.route_delete(app, id)?);
        }
        if self.transact(items).await? {
            self.bump_versions(current.spec.app_ids()).await;
            Ok(())
        } else {
            Err(self.conflict_or_missing(id, expected_version).await)
        }
    }

    async fn list_for_app(
        &self,
        app_id: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Webhook>, PortError> {
        let mut start = cursor.map(|c| {
            HashMap::from([
                ("PK".to_owned(), s(app_pk(app_id))),
                ("SK".to_owned(), s(webhook_pk(&c.0))),
            ])
        });
        let mut items = Vec::new();
        // A Query page can stop short (1 MB); keep reading until one more than asked is in.
        loop {
            let want = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let (batch, last) = self.query_app(app_id, start, Some(want)).await?;
            items.extend(batch);
            start = last;
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        Ok(Page::from_overfetch(items, limit, |w| w.id.to_string()))
    }

    async fn routes_for_app(&self, app_id: &str) -> Result<Vec<Route>, PortError> {
        let mut routes = Vec::new();
        let mut start = None;
        loop {
            let (batch, last) = self.query_app(app_id, start, None).await?;
            for webhook in batch {
                routes.extend(webhook.routes().into_iter().filter(|r| r.app_id == app_id));
            }
            start = last;
            if start.is_none() {
                return Ok(routes);
            }
        }
    }

    async fn routes_version(&self, app_id: &str) -> Result<u64, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(app_pk(app_id)))
            .key("SK", s(VERSION))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item.as_ref().and_then(|item| item.get("v")) {
            None => Ok(0),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|e| PortError::Corrupt(format!("route version {v} of App {app_id}: {e}"))),
            Some(other) => Err(PortError::Corrupt(format!(
                "route version of App {app_id} is {other:?}"
            ))),
        }
    }
}

fn from_epoch_ms(ms: &str) -> Result<OffsetDateTime, PortError> {
    ms.parse::<i64>()
        .ok()
        .and_then(from_unix_ms)
        .ok_or_else(|| PortError::Corrupt(format!("stored time {ms} is not epoch milliseconds")))
}

/// The failure run kept in a `META` item's attributes, if one is going on.
fn failure_run(item: &HashMap<String, AttributeValue>) -> Result<Option<FailureRun>, PortError> {
    let Some(AttributeValue::N(since)) = item.get("failingSince") else {
        return Ok(None);
    };
    let failures = match item.get("failures") {
        Some(AttributeValue::N(n)) => n.parse::<u32>().unwrap_or(u32::MAX),
        _ => 0,
    };
    let last_error = match item.get("lastFailure") {
        Some(AttributeValue::S(e)) => Some(e.clone()),
        _ => None,
    };
    Ok(Some(FailureRun {
        since: from_epoch_ms(since)?,
        failures,
        last_error,
    }))
}

/// The lifecycle as the Lambdas wire it: webhooks and revoked grants on `table`, operational
/// events onto the events queue at `events_queue_url`.
pub fn lifecycle(
    dynamo: &Client,
    sqs: &aws_sdk_sqs::Client,
    table: &str,
    events_queue_url: &str,
    namespace: crate::urn::Namespace,
) -> crate::lifecycle::Lifecycle {
    crate::lifecycle::Lifecycle::new(
        std::sync::Arc::new(DynamoWebhookStore::new(dynamo.clone(), table)),
        std::sync::Arc::new(DynamoGrantStore::new(dynamo.clone(), table)),
        std::sync::Arc::new(crate::queue::sqs::SqsQueue::new(
            sqs.clone(),
            events_queue_url,
        )),
        namespace,
    )
}

/// Revoked grants on the same table: `PK=GRANT#<sub> SK=APP#<appId>`, with `since`.
#[derive(Clone, Debug)]
pub struct DynamoGrantStore {
    client: Client,
    table: String,
}

fn grant_pk(sub: &str) -> String {
    format!("GRANT#{sub}")
}

impl DynamoGrantStore {
    /// The grant store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl GrantStore for DynamoGrantStore {
    async fn revoke(&self, sub: &str, app_id: &str, at: OffsetDateTime) -> Result<(), PortError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(grant_pk(sub)))
            .item("SK", s(app_pk(app_id)))
            .item("since", AttributeValue::N(unix_ms(at).to_string()))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        // A failed condition: revoked already, and the first time stays.
        unless_condition_failed(put).map(|_| ())
    }

    async fn restore(&self, sub: &str, app_id: &str) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(grant_pk(sub)))
            .key("SK", s(app_pk(app_id)))
            .send()
            .await
            .map_err(unavailable)
            .map(|_| ())
    }

    async fn revoked(&self, sub: &str) -> Result<Vec<RevokedGrant>, PortError> {
        let mut grants = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(grant_pk(sub)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                let (Some(AttributeValue::S(sk)), Some(AttributeValue::N(since))) =
                    (item.get("SK"), item.get("since"))
                else {
                    return Err(PortError::Corrupt(format!(
                        "grant item of {sub} lacks SK or since"
                    )));
                };
                let app_id = sk
                    .strip_prefix("APP#")
                    .ok_or_else(|| PortError::Corrupt(format!("grant item key {sk}")))?;
                grants.push(RevokedGrant {
                    sub: sub.to_owned(),
                    app_id: app_id.to_owned(),
                    since: from_epoch_ms(since)?,
                });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(grants);
            }
        }
    }
}

/// The event log on the same table: `PK=EV#<eventId> SK=META` with the event's delivered
/// body, its fan-out state and a TTL (DESIGN §6).
#[derive(Clone, Debug)]
pub struct DynamoEventLog {
    client: Client,
    table: String,
}

fn event_pk(id: &EventId) -> String {
    format!("EV#{id}")
}

impl DynamoEventLog {
    /// The event log on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn read(
        &self,
        id: &EventId,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(event_pk(id)))
            .key("SK", s(META))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // DynamoDB deletes expired items lazily (up to days later): treat them as gone.
        Ok(out.item.filter(|item| match item.get("ttl") {
            Some(AttributeValue::N(t)) => t.parse::<i64>().is_ok_and(|t| t > now),
            _ => true,
        }))
    }
}

#[async_trait]
impl EventLog for DynamoEventLog {
    async fn claim(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<EventClaim, PortError> {
        let doc = String::from_utf8(
            event
                .delivery_body()
                .map_err(|e| PortError::Corrupt(e.to_string()))?,
        )
        .map_err(|e| PortError::Corrupt(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let until = (now + lease).unix_timestamp_nanos() / 1_000_000;
        let now_ms = now.unix_timestamp_nanos() / 1_000_000;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(event_pk(&event.id)))
            .item("SK", s(META))
            .item("doc", s(doc))
            .item("state", s("pending"))
            .item("claimedUntil", AttributeValue::N(until.to_string()))
            .item(
                "receivedAt",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .item(
                "ttl",
                AttributeValue::N(expires_at.unix_timestamp().to_string()),
            )
            .condition_expression("attribute_not_exists(PK) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(EventClaim::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let Some(item) = self.read(&event.id).await? else {
                    // Expired between the write and the read: the next try claims it anew.
                    return Ok(EventClaim::InProgress);
                };
                if matches!(item.get("state"), Some(AttributeValue::S(state)) if state == "done") {
                    return Ok(EventClaim::Done);
                }
                let claimed = match item.get("claimedUntil") {
                    Some(AttributeValue::N(n)) => n.clone(),
                    _ => "0".to_owned(),
                };
                if claimed.parse::<i128>().unwrap_or(0) > now_ms {
                    return Ok(EventClaim::InProgress);
                }
                // Take over the lapsed claim, unless another consumer just did.
                let taken = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("PK", s(event_pk(&event.id)))
                    .key("SK", s(META))
                    .update_expression("SET claimedUntil = :until")
                    .condition_expression("#state = :pending AND (attribute_not_exists(claimedUntil) OR claimedUntil = :seen)")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
                    .expression_attribute_values(":pending", s("pending"))
                    .expression_attribute_values(":seen", AttributeValue::N(claimed))
                    .send()
                    .await;
                match taken {
                    Ok(_) => Ok(EventClaim::Unfinished),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                    {
                        Ok(EventClaim::InProgress)
                    }
                    Err(e) => Err(unavailable(e)),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release(&self, id: &EventId) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(event_pk(id)))
            .key("SK", s(META))
            .update_expression("SET claimedUntil = :zero")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Done or gone: nothing to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn mark_fanned_out(&self, id: &EventId) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(event_pk(id)))
            .key("SK", s(META))
            .update_expression("SET #state = :done")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn get(&self, id: &EventId) -> Result<Option<Event>, PortError> {
        self.read(id)
            .await?
            .map(|item| {
                doc_of(&item).and_then(|d| Event::from_stored(d).map_err(PortError::Corrupt))
            })
            .transpose()
    }
}

/// The attempt log on the same table: `PK=WH#<webhookId> SK=DL#<attemptId>`, with a TTL.
#[derive(Clone, Debug)]
pub struct DynamoAttemptLog {
    client: Client,
    table: String,
}

impl DynamoAttemptLog {
    /// The attempt log on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn status_name(status: AttemptStatus) -> String {
    status.as_str().to_owned()
}

/// Items of one `BatchWriteItem` request at most (DynamoDB's limit).
const BATCH_WRITE_ITEMS: usize = 25;
/// Rounds of resending what a `BatchWriteItem` left unprocessed (throttling) before giving up.
const BATCH_WRITE_ROUNDS: u32 = 8;

/// Pages (up to 1 MB each) of a webhook's newest attempts searched for a delivery that has no
/// `DLV#` item (it succeeded on its first try) before it is reported not found.
pub const DELIVERY_SEARCH_PAGES: usize = 32;

/// Whether an attempt's delivery gets a `DLV#` item: all but first-try successes, which are
/// most deliveries and are found by searching the newest attempts instead (one write per
/// delivery where it matters for cost; one GetItem where a redelivery is most likely).
fn needs_delivery_item(attempt: &Attempt) -> bool {
    !(attempt.attempt <= 1 && attempt.status == AttemptStatus::Delivered)
}

/// The two items of an attempt: the attempt (`DL#<attemptId>`, listed newest first, with its
/// `deliveryId`) and which event its delivery carries (`DLV#<deliveryId>`, for redelivery by
/// delivery id with one GetItem; the latest attempt's number wins).
fn attempt_items(
    attempt: &Attempt,
    expires_at: OffsetDateTime,
) -> Result<[HashMap<String, AttributeValue>; 2], PortError> {
    let doc = serde_json::to_string(attempt).map_err(|e| PortError::Corrupt(e.to_string()))?;
    let pk = webhook_pk(attempt.webhook_id.as_str());
    let ttl = AttributeValue::N(expires_at.unix_timestamp().to_string());
    Ok([
        HashMap::from([
            ("PK".to_owned(), s(pk.clone())),
            ("SK".to_owned(), s(format!("DL#{}", attempt.attempt_id))),
            ("status".to_owned(), s(status_name(attempt.status))),
            ("deliveryId".to_owned(), s(attempt.delivery_id.as_str())),
            ("doc".to_owned(), s(doc)),
            ("ttl".to_owned(), ttl.clone()),
        ]),
        HashMap::from([
            ("PK".to_owned(), s(pk)),
            ("SK".to_owned(), s(format!("DLV#{}", attempt.delivery_id))),
            ("eventId".to_owned(), s(attempt.event_id.to_string())),
            (
                "attempt".to_owned(),
                AttributeValue::N(attempt.attempt.to_string()),
            ),
            ("ttl".to_owned(), ttl),
        ]),
    ])
}

impl DynamoAttemptLog {
    /// Writes `items` with `BatchWriteItem`, 25 a request, resending what DynamoDB leaves
    /// unprocessed with a growing pause.
    async fn put_all(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut requests = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut round = 0;
        while !requests.is_empty() {
            let chunk: Vec<WriteRequest> = requests
                .drain(..requests.len().min(BATCH_WRITE_ITEMS))
                .collect();
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, chunk)
                .send()
                .await
                .map_err(unavailable)?;
            let unprocessed = out
                .unprocessed_items
                .and_then(|mut by_table| by_table.remove(&self.table))
                .unwrap_or_default();
            if !unprocessed.is_empty() {
                round += 1;
                if round > BATCH_WRITE_ROUNDS {
                    return Err(PortError::Unavailable(
                        format!(
                            "DynamoDB left {} attempt items unprocessed {BATCH_WRITE_ROUNDS} times",
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
}

#[async_trait]
impl AttemptLog for DynamoAttemptLog {
    async fn record(&self, attempt: &Attempt, expires_at: OffsetDateTime) -> Result<(), PortError> {
        self.record_many(std::slice::from_ref(attempt), expires_at)
            .await
    }

    /// One `BatchWriteItem` per 25 items: an item per attempt, and a `DLV#` item per delivery
    /// that did not succeed on its first try. A request may not name one key twice, so of
    /// several attempts of one delivery (a duplicate message beside a redelivery) only the
    /// highest-numbered writes the `DLV#` item.
    async fn record_many(
        &self,
        attempts: &[Attempt],
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError> {
        let mut latest: HashMap<(&WebhookId, &DeliveryId), &Attempt> = HashMap::new();
        for a in attempts {
            let slot = latest.entry((&a.webhook_id, &a.delivery_id)).or_insert(a);
            if a.attempt > slot.attempt {
                *slot = a;
            }
        }
        let mut items = Vec::with_capacity(attempts.len() * 2);
        for attempt in attempts {
            let [log, map] = attempt_items(attempt, expires_at)?;
            items.push(log);
            if needs_delivery_item(attempt)
                && latest
                    .get(&(&attempt.webhook_id, &attempt.delivery_id))
                    .is_some_and(|l| std::ptr::eq(*l, attempt))
            {
                items.push(map);
            }
        }
        self.put_all(items).await
    }

    async fn last_attempt(
        &self,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Option<(EventId, u32)>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(webhook_pk(webhook.as_str())))
            .key("SK", s(format!("DLV#{delivery}")))
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return self.search_first_try(webhook, delivery).await;
        };
        let attempt = match item.get("attempt") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        match item.get("eventId") {
            Some(AttributeValue::S(id)) => EventId::parse(id)
                .map(|id| Some((id, attempt)))
                .map_err(PortError::Corrupt),
            _ => Ok(None),
        }
    }

    async fn list(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Attempt>, PortError> {
        let pk = webhook_pk(webhook.as_str());
        let mut start = cursor.map(|c| {
            HashMap::from([
                ("PK".to_owned(), s(pk.clone())),
                ("SK".to_owned(), s(format!("DL#{}", c.0))),
            ])
        });
        let mut items: Vec<Attempt> = Vec::new();
        loop {
            let out = self
                .attempts_query(&pk, status)
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                let attempt: Attempt = serde_json::from_str(doc_of(item)?)
                    .map_err(|e| PortError::Corrupt(format!("attempt: {e}")))?;
                items.push(attempt);
            }
            start = out.last_evaluated_key;
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        Ok(Page::from_overfetch(items, limit, |a| a.attempt_id.clone()))
    }

    async fn count(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
    ) -> Result<u64, PortError> {
        let pk = webhook_pk(webhook.as_str());
        let mut start = None;
        let mut total = 0u64;
        loop {
            let out = self
                .attempts_query(&pk, status)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            total += u64::try_from(out.count).unwrap_or(0);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }
}

impl DynamoAttemptLog {
    /// A delivery without a `DLV#` item succeeded on its first try (or is unknown): its
    /// attempt among the webhook's newest, searched for [`DELIVERY_SEARCH_PAGES`] pages.
    async fn search_first_try(
        &self,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Option<(EventId, u32)>, PortError> {
        let mut start = None;
        for _ in 0..DELIVERY_SEARCH_PAGES {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :dl)")
                .filter_expression("deliveryId = :delivery")
                .expression_attribute_values(":pk", s(webhook_pk(webhook.as_str())))
                .expression_attribute_values(":dl", s("DL#"))
                .expression_attribute_values(":delivery", s(delivery.as_str()))
                .projection_expression("doc")
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            let found = out
                .items()
                .iter()
                .map(|item| {
                    serde_json::from_str::<Attempt>(doc_of(item)?)
                        .map_err(|e| PortError::Corrupt(format!("attempt: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .max_by_key(|a| a.attempt);
            if let Some(a) = found {
                return Ok(Some((a.event_id, a.attempt)));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(None);
            }
        }
        tracing::info!(webhook_id = %webhook, delivery_id = %delivery, pages = DELIVERY_SEARCH_PAGES, "delivery not among the webhook's newest attempts searched");
        Ok(None)
    }

    /// The unexpired attempt items (`DL#`) of a webhook's partition, of one status or all.
    fn attempts_query(
        &self,
        pk: &str,
        status: Option<AttemptStatus>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :dl)")
            .expression_attribute_values(":pk", s(pk.to_owned()))
            .expression_attribute_values(":dl", s("DL#"))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_names("#ttl", "ttl");
        match status {
            Some(st) => query
                .filter_expression("#ttl > :now AND #status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status_name(st))),
            None => query.filter_expression("#ttl > :now"),
        }
    }
}

/// Rate-limit slots on the same table: `PK=RATE#<webhookId> SK=RATE`, `next` = the next free
/// slot (Unix ms), with a TTL. A reservation is one conditional `UpdateItem` when the webhook
/// is idle (`next` in the past: the slot is now) and a second, unconditional one when it is
/// busy (`ADD next :interval`, returning the new value: the slot is the old `next`). So every
/// delivery of a limited webhook costs one or two writes, containers share the limit, and
/// the slots are exact but for clock skew between containers (milliseconds on Lambda).
/// Within one container, reservations for one webhook are made one at a time, so the table
/// sees one writer per container and webhook.
#[derive(Clone, Debug)]
pub struct DynamoRateLimiter {
    client: Client,
    table: String,
    turns: std::sync::Arc<
        std::sync::Mutex<HashMap<WebhookId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    >,
}

impl DynamoRateLimiter {
    /// The limiter on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            turns: std::sync::Arc::default(),
        }
    }

    fn turn(&self, webhook: &WebhookId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        if turns.len() > 10_000 {
            turns.retain(|_, t| std::sync::Arc::strong_count(t) > 1);
        }
        turns.entry(webhook.clone()).or_default().clone()
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn reserve(
        &self,
        webhook: &WebhookId,
        limit: RateLimit,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, PortError> {
        let turn = self.turn(webhook);
        let _turn = turn.lock().await;
        let pk = format!("RATE#{webhook}");
        let interval = i64::try_from(limit.interval().as_millis()).unwrap_or(i64::MAX);
        let now_ms = unix_ms(now);

        // Both writes touch `next` and keep the item a day past its last slot, then the
        // table's TTL removes it.
        let slot_update = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(&pk))
                .key("SK", s("RATE"))
                .expression_attribute_names("#next", "next")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(now.unix_timestamp() + 86_400))
        };
        let idle = slot_update()
            .update_expression("SET #next = :after, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#next) OR #next <= :now")
            .expression_attribute_values(":after", n(now_ms + interval))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        if unless_condition_failed(idle)?.is_some() {
            return Ok(now);
        }
        let busy = slot_update()
            .update_expression("ADD #next :interval SET #ttl = :ttl")
            .expression_attribute_values(":interval", n(interval))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let after = match busy.attributes().and_then(|a| a.get("next")) {
            Some(AttributeValue::N(v)) => v
                .parse::<i64>()
                .map_err(|e| PortError::Corrupt(format!("rate-limit slot {v}: {e}")))?,
            _ => {
                return Err(PortError::Corrupt(
                    "rate-limit item has no next slot".into(),
                ))
            }
        };
        // Never in the past: the item may have gone idle between the two writes.
        let slot = from_unix_ms(after - interval)
            .ok_or_else(|| PortError::Corrupt(format!("rate-limit slot {after}")))?;
        Ok(slot.max(now))
    }
}
