//! The attempt log: `PK=WH#<webhookId> SK=DL#<attemptId>`.

use super::*;

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
    let mut log = HashMap::from([
        ("PK".to_owned(), s(pk.clone())),
        ("SK".to_owned(), s(format!("DL#{}", attempt.attempt_id))),
        ("status".to_owned(), s(status_name(attempt.status))),
        ("deliveryId".to_owned(), s(attempt.delivery_id.as_str())),
        ("doc".to_owned(), s(doc)),
        ("ttl".to_owned(), ttl.clone()),
    ]);
    if let Some(app) = &attempt.app_id {
        log.insert(APP_ID.to_owned(), s(app.clone()));
    }
    Ok([
        log,
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

/// The attribute of an attempt item naming its event's App (what an App purge picks by).
const APP_ID: &str = "appId";

impl DynamoAttemptLog {
    /// Writes `items` with `BatchWriteItem`, 25 a request, resending what DynamoDB leaves
    /// unprocessed with a growing pause.
    async fn put_all(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        batch_write(&self.client, &self.table, requests).await
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

    async fn erase(
        &self,
        webhook: &WebhookId,
        app: Option<&str>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        self.erase_page(webhook, app, cursor, limit).await
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
    /// [`AttemptLog::erase`]: one page of the webhook's attempt items (`DL#`, `DLV#`); an
    /// attempt of the App goes with its delivery's `DLV#` item.
    async fn erase_page(
        &self,
        webhook: &WebhookId,
        app: Option<&str>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        let pk = webhook_pk(webhook.as_str());
        let start = cursor.map(|c| {
            HashMap::from([
                ("PK".to_owned(), s(pk.clone())),
                ("SK".to_owned(), s(c.0.clone())),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :dl)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":dl", s("DL"))
            .projection_expression("SK, deliveryId, appId")
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(unavailable)?;
        let text = |item: &HashMap<String, AttributeValue>, name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let mut keys = BTreeSet::new();
        let mut erased = 0;
        for item in out.items() {
            let Some(sk) = text(item, "SK") else { continue };
            if sk.starts_with("DLV#") {
                // A delivery's pointer goes with its attempts (below), or whole-sale.
                if app.is_none() {
                    keys.insert(sk);
                }
                continue;
            }
            if app.is_some() && text(item, APP_ID).as_deref() != app {
                continue;
            }
            erased += 1;
            if let Some(delivery) = text(item, "deliveryId") {
                keys.insert(format!("DLV#{delivery}"));
            }
            keys.insert(sk);
        }
        batch_delete(
            &self.client,
            &self.table,
            keys.into_iter().map(|sk| (pk.clone(), sk)),
        )
        .await?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|key| text(key, "SK"))
            .map(Cursor);
        Ok((erased, next))
    }

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
