//! Webhooks and their per-App route items, written together in one `TransactWriteItems`.

use super::*;

/// The webhook store on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoWebhookStore {
    client: Client,
    table: String,
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
                // A new version starts at the time in ms: one written after an App purge
                // deleted the item never equals a number a route cache kept from before.
                .update_expression("SET v = if_not_exists(v, :start) + :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(
                    ":start",
                    AttributeValue::N(unix_ms(OffsetDateTime::now_utc()).to_string()),
                )
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
        if transact(&self.client, items).await? {
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

    async fn app_ids(&self) -> Result<Vec<String>, PortError> {
        let mut apps = std::collections::BTreeSet::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(PK, :app) AND begins_with(SK, :wh)")
                .expression_attribute_values(":app", s("APP#"))
                .expression_attribute_values(":wh", s("WH#"))
                .projection_expression("PK")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            apps.extend(
                out.items()
                    .iter()
                    .filter_map(|item| item.get("PK").and_then(|v| v.as_s().ok()))
                    .filter_map(|pk| pk.strip_prefix("APP#"))
                    .map(str::to_owned),
            );
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(apps.into_iter().collect()),
            }
        }
    }

    async fn ids(&self) -> Result<Vec<WebhookId>, PortError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("SK = :meta AND begins_with(PK, :wh)")
                .expression_attribute_values(":meta", s(META))
                .expression_attribute_values(":wh", s("WH#"))
                .projection_expression("PK")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                let pk = item.get("PK").and_then(|v| v.as_s().ok());
                if let Some(id) = pk
                    .and_then(|pk| pk.strip_prefix("WH#"))
                    .and_then(WebhookId::parse)
                {
                    ids.push(id);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        ids.sort();
        Ok(ids)
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
        if transact(&self.client, items).await? {
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
        if transact(&self.client, items).await? {
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

    async fn forget_app(&self, app_id: &str) -> Result<(), PortError> {
        let (routes, _) = self.query_app(app_id, None, Some(1)).await?;
        if !routes.is_empty() {
            return Ok(());
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(app_pk(app_id)))
            .key("SK", s(VERSION))
            .send()
            .await
            .map_err(unavailable)
            .map(|_| ())
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
