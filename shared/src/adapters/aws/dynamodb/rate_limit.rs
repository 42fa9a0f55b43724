//! Rate-limit slots shared by every container.

use super::*;

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
    async fn forget(&self, webhook: &WebhookId) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(format!("RATE#{webhook}")))
            .key("SK", s("RATE"))
            .send()
            .await
            .map_err(unavailable)
            .map(|_| ())
    }

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
