//! Revoked grants: `PK=GRANT#<sub> SK=APP#<appId>`.

use super::*;

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
