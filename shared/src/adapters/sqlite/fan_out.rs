//! One-commit fan-out: the event's claim, its delivery messages and its mark written in one
//! savepoint of one group commit, since the event log and the deliveries queue share the file.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::events::ClaimRow;
use super::queue::{body_of, insert_messages, now_ms, SqliteQueue};
use super::unavailable;
use crate::delivery::DeliveryMessage;
use crate::event::Event;
use crate::ports::{EventClaim, FanOutCommit, PortError};

#[async_trait]
impl FanOutCommit for SqliteQueue {
    async fn commit_fan_out(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        lease: Duration,
        messages: &[DeliveryMessage],
    ) -> Result<EventClaim, PortError> {
        let row = ClaimRow::of(event, expires_at, lease)?;
        let bodies = messages
            .iter()
            .map(|m| Ok((body_of(m)?, m.group.clone())))
            .collect::<Result<Vec<_>, PortError>>()?;
        let queue = self.name().to_owned();
        let now = now_ms();
        let written = self
            .database()
            .with_conn(move |c| {
                let tx = c.savepoint().map_err(unavailable)?;
                let claim = row.claim(&tx)?;
                let sent = match claim {
                    EventClaim::New | EventClaim::Unfinished => {
                        let sent = insert_messages(&tx, &queue, bodies, None, now, now)?;
                        row.mark_fanned_out(&tx)?;
                        sent
                    }
                    EventClaim::InProgress | EventClaim::Done => Vec::new(),
                };
                tx.commit().map_err(unavailable)?;
                Ok((claim, sent))
            })
            .await;
        let (claim, sent) = self.on_failure(written)?;
        if !sent.is_empty() {
            self.scheduled(self.name(), now, sent);
        }
        Ok(claim)
    }
}
