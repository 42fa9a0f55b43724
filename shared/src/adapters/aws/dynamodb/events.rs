//! The event log: `PK=EV#<eventId> SK=META`, listed per App and day through the
//! `events-by-app` index (`appDay` = `<appId>#<yyyy-mm-dd>`, `appSeq` = receipt ms and id;
//! keys only, the documents read back with `BatchGetItem`).

use super::*;

/// The event log on the same table: `PK=EV#<eventId> SK=META` with the event's delivered
/// body, its fan-out state and a TTL.
#[derive(Clone, Debug)]
pub struct DynamoEventLog {
    client: Client,
    table: String,
}

fn event_pk(id: &EventId) -> String {
    format!("EV#{id}")
}

/// The global secondary index listing an App's events by receipt time.
pub const EVENTS_BY_APP: &str = "events-by-app";
/// Its partition key: `<appId>#<yyyy-mm-dd>` (a day per partition keeps a busy App's writes
/// spread over time, not on one key forever).
pub const APP_DAY: &str = "appDay";
/// Its sort key: [`LoggedEvent::position`].
pub const APP_SEQ: &str = "appSeq";

fn app_day(app_id: &str, at: OffsetDateTime) -> String {
    let d = at.date();
    format!(
        "{app_id}#{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    )
}

impl DynamoEventLog {
    /// The event log on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The `PutItem` of `event`'s item as received `now`, in fan-out `state`, kept until
    /// `expires_at` and listed by its App: what every claim writes, before its own attributes
    /// and condition.
    fn put_event(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        state: &str,
    ) -> Result<aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder, PortError>
    {
        let doc = event
            .stored_doc()
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
        let position = LoggedEvent {
            event: event.clone(),
            received_at: now,
        }
        .position();
        Ok(self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(event_pk(&event.id)))
            .item("SK", s(META))
            .item("doc", s(doc))
            .item("state", s(state))
            .item(
                "receivedAt",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .item(APP_DAY, s(app_day(event.urn.app_id(), now)))
            .item(APP_SEQ, s(position))
            .item(
                "ttl",
                AttributeValue::N(expires_at.unix_timestamp().to_string()),
            ))
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
        let now = OffsetDateTime::now_utc();
        let until = (now + lease).unix_timestamp_nanos() / 1_000_000;
        let now_ms = now.unix_timestamp_nanos() / 1_000_000;
        let put = self
            .put_event(event, expires_at, now, "pending")?
            .item("claimedUntil", AttributeValue::N(until.to_string()))
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

    async fn claim_for_message(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        taken_by: &str,
    ) -> Result<Option<EventClaim>, PortError> {
        let now = OffsetDateTime::now_utc();
        let now_ms = now.unix_timestamp_nanos() / 1_000_000;
        // The one write: the event, already "done" for anyone else. Its own message's retry
        // may write it again; so may a claim an older build left lapsed (no `takenBy`).
        let put = self
            .put_event(event, expires_at, now, "done")?
            .item("takenBy", s(taken_by))
            .condition_expression(
                "attribute_not_exists(PK) OR #ttl <= :now OR takenBy = :by \
                 OR (attribute_not_exists(takenBy) AND #state = :pending AND claimedUntil < :nowms)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .expression_attribute_values(":by", s(taken_by))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":nowms", AttributeValue::N(now_ms.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => {
                let repeated = out.attributes.as_ref().is_some_and(|old| {
                    matches!(old.get("takenBy"), Some(AttributeValue::S(by)) if by == taken_by)
                });
                Ok(Some(if repeated {
                    EventClaim::Unfinished
                } else {
                    EventClaim::New
                }))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Some(EventClaim::Done))
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

    async fn erase(&self, ids: &[EventId]) -> Result<u64, PortError> {
        let ids: BTreeSet<_> = ids.iter().collect();
        let n = ids.len() as u64;
        batch_delete(
            &self.client,
            &self.table,
            ids.into_iter().map(|id| (event_pk(id), META.to_owned())),
        )
        .await?;
        Ok(n)
    }

    async fn list_for_app(
        &self,
        app_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, PortError> {
        // The index holds keys only: the positions in order, then the items by key.
        let mut positions = self
            .positions(app_id, since, until, cursor, limit + 1)
            .await?;
        let next = (positions.len() > limit).then(|| {
            positions.truncate(limit);
            positions.last().map(|(seq, _)| Cursor(seq.clone()))
        });
        let mut found = HashMap::new();
        for keys in positions.chunks(100) {
            found.extend(
                self.read_many(keys.iter().map(|(_, pk)| pk.clone()))
                    .await?,
            );
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut items = Vec::with_capacity(positions.len());
        for (seq, pk) in &positions {
            // Deleted, or expired and not yet deleted by TTL: as good as absent.
            let Some(item) = found.get(pk) else { continue };
            if matches!(item.get("ttl"), Some(AttributeValue::N(t)) if t.parse::<i64>().is_ok_and(|t| t <= now))
            {
                continue;
            }
            let (ms, _) = LoggedEvent::parse_position(seq)?;
            items.push(LoggedEvent {
                event: Event::from_stored(doc_of(item)?).map_err(PortError::Corrupt)?,
                received_at: from_unix_ms(ms)
                    .ok_or_else(|| PortError::Corrupt(format!("{APP_SEQ} {seq}")))?,
            });
        }
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }
}

impl DynamoEventLog {
    /// Up to `want` (position, item key) pairs of the App's events in `[since, until)` after
    /// `cursor`, in order: one day's index partition at a time.
    async fn positions(
        &self,
        app_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        cursor: Option<&Cursor>,
        want: usize,
    ) -> Result<Vec<(String, String)>, PortError> {
        let lowest = format!("{:013}#", unix_ms(since).max(0));
        let highest = format!("{:013}#", unix_ms(until).max(0));
        let mut after = cursor.map_or_else(|| lowest.clone(), |c| c.0.clone());
        let (after_ms, _) = LoggedEvent::parse_position(&after)?;
        let mut day = from_unix_ms(after_ms).unwrap_or(since).date();
        let last_day = until.date();
        let mut positions = Vec::new();
        while day <= last_day && positions.len() < want && after < highest {
            let partition = app_day(app_id, day.midnight().assume_utc());
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(EVENTS_BY_APP)
                    .key_condition_expression("#day = :day AND #seq BETWEEN :after AND :before")
                    .expression_attribute_names("#day", APP_DAY)
                    .expression_attribute_names("#seq", APP_SEQ)
                    .expression_attribute_values(":day", s(partition.clone()))
                    .expression_attribute_values(":after", s(format!("{after}\u{0}")))
                    .expression_attribute_values(":before", s(highest.clone()))
                    .set_exclusive_start_key(start)
                    .limit(i32::try_from(want - positions.len()).unwrap_or(i32::MAX))
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in out.items() {
                    match (item.get(APP_SEQ), item.get("PK")) {
                        (Some(AttributeValue::S(seq)), Some(AttributeValue::S(pk))) => {
                            positions.push((seq.clone(), pk.clone()));
                        }
                        _ => {
                            return Err(PortError::Corrupt(format!(
                                "{EVENTS_BY_APP} entry without keys"
                            )))
                        }
                    }
                }
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() && positions.len() < want => start = Some(key),
                    _ => break,
                }
            }
            after = lowest.clone();
            day = match day.next_day() {
                Some(next) => next,
                None => break,
            };
        }
        Ok(positions)
    }

    /// The event items of these keys (at most 100), by key; missing ones left out.
    async fn read_many(
        &self,
        keys: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, HashMap<String, AttributeValue>>, PortError> {
        let keys = keys
            .map(|pk| HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(META))]))
            .collect::<Vec<_>>();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(build_err)?,
        );
        let mut found = HashMap::new();
        // BatchGetItem may leave keys unprocessed (throttling): asked again until none are.
        while let Some(request) = pending.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                if let Some(AttributeValue::S(pk)) = item.get("PK") {
                    found.insert(pk.clone(), item);
                }
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys().is_empty());
        }
        Ok(found)
    }
}
