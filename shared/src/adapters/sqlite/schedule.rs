//! The embedded queue's visibility schedule, in memory: which message of which queue may be
//! received next, which are hidden and until when, and which head their ordering group.
//!
//! The messages themselves (bodies, ids, send times, delays, retry counts) live in SQLite;
//! this is an index over them, rebuilt from the table on start. Keeping it here instead of
//! in B-tree indexes is what makes a delivery cost one insert and one delete of a table row:
//! hiding a message on receive, and the three index entries each write used to move, are
//! memory operations now. Pure: no I/O, tested without a database.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A message as the schedule knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// When it may be received (ms since the epoch).
    visible_at: i64,
    /// Times received.
    receive_count: u32,
    /// The receipt of its latest receive (0: never received in this process).
    receipt: u64,
    /// Its ordering group, if any.
    group: Option<Arc<str>>,
    /// Loaded from the table (not sent by this process): its receive count is written back
    /// on every receive, so a message that crashes the process is still dead-lettered.
    recovered: bool,
    /// Its id and body, kept from its send while [`BODY_CACHE_BYTES`] allows: received
    /// without a table read.
    body: Option<Body>,
}

/// A message's id and body as sent.
pub type Body = (Arc<str>, Arc<str>);

/// Most bytes of message bodies kept in memory (all queues together); past it, bodies are
/// read from the table on receive.
pub const BODY_CACHE_BYTES: usize = 8 << 20;

/// How often (ms) a busy receive still reads `PRAGMA data_version`, to notice another
/// process's writes (`hookline dlq replay`) while every message comes from memory.
pub const CHECK_EVERY_MS: i64 = 1_000;

fn body_bytes(body: &Option<Body>) -> usize {
    body.as_ref().map_or(0, |(id, b)| id.len() + b.len())
}

/// One queue's messages.
#[derive(Debug, Default)]
struct QueueSchedule {
    entries: HashMap<i64, Entry>,
    /// `(visible_at, seq)` of every receivable candidate: messages without a group and the
    /// oldest message of each group.
    ready: BTreeSet<(i64, i64)>,
    /// Each group's messages, oldest first.
    groups: HashMap<Arc<str>, BTreeSet<i64>>,
    /// Messages not received yet: the work waiting for its first attempt.
    unreceived: usize,
}

impl QueueSchedule {
    fn insert(&mut self, seq: i64, entry: Entry) {
        if self.entries.contains_key(&seq) {
            return;
        }
        if entry.receive_count == 0 {
            self.unreceived += 1;
        }
        let head = match &entry.group {
            None => true,
            Some(g) => {
                let members = self.groups.entry(g.clone()).or_default();
                members.insert(seq);
                members.first() == Some(&seq)
            }
        };
        if head {
            // A new head displaces the old one from `ready` (possible only when rows of
            // the group arrive out of order, as on a resync).
            if let Some(g) = &entry.group {
                let displaced = self.groups[g]
                    .iter()
                    .nth(1)
                    .copied()
                    .and_then(|s| self.entries.get(&s).map(|e| (e.visible_at, s)));
                if let Some(key) = displaced {
                    self.ready.remove(&key);
                }
            }
            self.ready.insert((entry.visible_at, seq));
        }
        self.entries.insert(seq, entry);
    }

    fn remove(&mut self, seq: i64) -> Option<Entry> {
        let entry = self.entries.remove(&seq)?;
        if entry.receive_count == 0 {
            self.unreceived -= 1;
        }
        let was_ready = self.ready.remove(&(entry.visible_at, seq));
        if let Some(g) = &entry.group {
            if let Some(members) = self.groups.get_mut(g) {
                members.remove(&seq);
                match members.first().copied() {
                    None => {
                        self.groups.remove(g);
                    }
                    Some(next) if was_ready => {
                        if let Some(e) = self.entries.get(&next) {
                            self.ready.insert((e.visible_at, next));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Some(entry)
    }

    fn set_visible_at(&mut self, seq: i64, visible_at: i64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            if self.ready.remove(&(e.visible_at, seq)) {
                self.ready.insert((visible_at, seq));
            }
            e.visible_at = visible_at;
        }
    }
}

/// What a receive picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// Deliver it: read its body and hand it out with this receive count and receipt.
    Receive {
        /// The row.
        seq: i64,
        /// Times received, this time included.
        receive_count: u32,
        /// The receipt to hand out (see [`receipt`]).
        receipt: String,
        /// Write the receive count back to the row (a message recovered from the table).
        persist_count: bool,
        /// Its id and body, if kept in memory.
        body: Option<Body>,
    },
    /// Received too often: it moved to the dead-letter queue; move its row too.
    Redrive {
        /// The row.
        seq: i64,
        /// Times it was received.
        receive_count: u32,
    },
}

/// A row of the queue table, as the schedule is built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The row's `seq`.
    pub seq: i64,
    /// The queue it is in.
    pub queue: String,
    /// When it may be received.
    pub visible_at: i64,
    /// Times received.
    pub receive_count: u32,
    /// Its ordering group.
    pub group: Option<String>,
}

/// Every embedded queue's schedule.
#[derive(Debug, Default)]
pub struct Schedule {
    queues: HashMap<String, QueueSchedule>,
    next_receipt: u64,
    groups: HashMap<String, Arc<str>>,
    /// Something may be out of step with the table (a failed write): rebuild before the
    /// next receive.
    stale: bool,
    /// The connection's `PRAGMA data_version` when the table was last read: it moves when
    /// another process (`hookline dlq replay`) commits to the file.
    data_version: Option<i64>,
    /// When `data_version` was last read (ms).
    checked_at: i64,
    /// Bytes of bodies kept.
    body_bytes: usize,
}

/// The receipt handle for `seq`'s receive number `nonce`.
pub fn receipt(seq: i64, nonce: u64) -> String {
    format!("{seq}:{nonce}")
}

/// `(seq, nonce)` of a receipt from [`receipt`]; `None` for anything else.
pub fn parse_receipt(receipt: &str) -> Option<(i64, u64)> {
    let (seq, nonce) = receipt.split_once(':')?;
    Some((seq.parse().ok()?, nonce.parse().ok()?))
}

impl Schedule {
    /// A schedule of the rows given (on start, or on a rebuild).
    pub fn from_rows(rows: impl IntoIterator<Item = Row>) -> Self {
        let mut schedule = Self::default();
        for row in rows {
            schedule.load(row, None);
        }
        schedule
    }

    fn group(&mut self, name: Option<String>) -> Option<Arc<str>> {
        let name = name?;
        Some(
            self.groups
                .entry(name.clone())
                .or_insert_with(|| Arc::from(name))
                .clone(),
        )
    }

    fn load(&mut self, row: Row, kept: Option<&Entry>) {
        let group = self.group(row.group);
        let mut entry = Entry {
            visible_at: row.visible_at,
            receive_count: row.receive_count,
            receipt: 0,
            group,
            recovered: true,
            body: None,
        };
        if let Some(kept) = kept {
            entry.visible_at = entry.visible_at.max(kept.visible_at);
            entry.receive_count = entry.receive_count.max(kept.receive_count);
            entry.receipt = kept.receipt;
            entry.recovered = kept.recovered;
            entry.body = kept.body.clone();
        }
        self.body_bytes += body_bytes(&entry.body);
        self.queues
            .entry(row.queue)
            .or_default()
            .insert(row.seq, entry);
    }

    /// Rebuilds from the table's rows, keeping what only memory knows: the receive counts
    /// and receipts of messages received in this process, and their hidden-until times.
    pub fn rebuild(&mut self, rows: impl IntoIterator<Item = Row>) {
        let old = std::mem::take(&mut self.queues);
        self.stale = false;
        self.body_bytes = 0;
        for row in rows {
            let kept = old.get(&row.queue).and_then(|q| q.entries.get(&row.seq));
            self.load(row, kept);
        }
    }

    /// Records the connection's `data_version`; true when it moved since the last call, that
    /// is when another process wrote to the database and the schedule should be rebuilt.
    pub fn data_version_moved(&mut self, version: i64) -> bool {
        let moved = self.data_version.is_some_and(|v| v != version);
        self.data_version = Some(version);
        moved
    }

    /// Records that `data_version` was read at `now`.
    pub fn checked(&mut self, now: i64) {
        self.checked_at = now;
    }

    /// True when a receive at `now` must go to the table first: the schedule may be stale,
    /// or `data_version` was not read for [`CHECK_EVERY_MS`].
    pub fn needs_check(&self, now: i64) -> bool {
        self.stale || now.saturating_sub(self.checked_at) >= CHECK_EVERY_MS
    }

    /// Marks the schedule as possibly out of step with the table.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// True when [`Self::rebuild`] should run before the next receive.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// A message sent (committed) to `queue`; a row already known is left as it is.
    pub fn sent(&mut self, queue: &str, seq: i64, visible_at: i64, group: Option<String>) {
        self.sent_with_body(queue, seq, visible_at, group, None);
    }

    /// The same, keeping its id and body in memory if [`BODY_CACHE_BYTES`] allows.
    pub fn sent_with_body(
        &mut self,
        queue: &str,
        seq: i64,
        visible_at: i64,
        group: Option<String>,
        body: Option<Body>,
    ) {
        let group = self.group(group);
        let body =
            body.filter(|b| self.body_bytes + body_bytes(&Some(b.clone())) <= BODY_CACHE_BYTES);
        let q = self.queues.entry(queue.to_owned()).or_default();
        if q.entries.contains_key(&seq) {
            return;
        }
        self.body_bytes += body_bytes(&body);
        q.insert(
            seq,
            Entry {
                visible_at,
                receive_count: 0,
                receipt: 0,
                group,
                recovered: false,
                body,
            },
        );
    }

    /// Picks up to `max` messages of `queue` visible at `now`, oldest visible first, and
    /// hides them until `now + visibility_ms`. With `redrive = Some((dlq, max_receives))`,
    /// a visible message already received `max_receives` times moves to `dlq` instead (and
    /// does not count towards `max`).
    pub fn receive(
        &mut self,
        queue: &str,
        now: i64,
        max: usize,
        visibility_ms: i64,
        redrive: Option<(&str, u32)>,
    ) -> Vec<Picked> {
        let mut out = Vec::new();
        let mut delivered = 0;
        let mut moved = Vec::new();
        let Some(q) = self.queues.get_mut(queue) else {
            return out;
        };
        while delivered < max {
            let Some(&(visible_at, seq)) = q.ready.first() else {
                break;
            };
            if visible_at > now {
                break;
            }
            let Some(entry) = q.entries.get(&seq) else {
                q.ready.remove(&(visible_at, seq));
                continue;
            };
            if let Some((_, max_receives)) = redrive {
                if entry.receive_count >= max_receives {
                    if let Some(mut e) = q.remove(seq) {
                        self.body_bytes -= body_bytes(&e.body);
                        e.body = None;
                        out.push(Picked::Redrive {
                            seq,
                            receive_count: e.receive_count,
                        });
                        moved.push((seq, e));
                    }
                    continue;
                }
            }
            self.next_receipt += 1;
            let nonce = self.next_receipt;
            let hidden_until = now.saturating_add(visibility_ms);
            q.set_visible_at(seq, hidden_until);
            if let Some(e) = q.entries.get_mut(&seq) {
                if e.receive_count == 0 {
                    q.unreceived -= 1;
                }
                e.receive_count += 1;
                e.receipt = nonce;
                out.push(Picked::Receive {
                    seq,
                    receive_count: e.receive_count,
                    receipt: receipt(seq, nonce),
                    persist_count: e.recovered,
                    body: e.body.clone(),
                });
            }
            delivered += 1;
        }
        if let Some((dlq, _)) = redrive {
            let dead = self.queues.entry(dlq.to_owned()).or_default();
            for (seq, mut e) in moved {
                e.visible_at = now;
                e.receipt = 0;
                e.group = None;
                dead.insert(seq, e);
            }
        }
        out
    }

    /// The row behind `receipt` if that receipt is `queue`'s latest for it (a stale one is
    /// ignored, as in SQS).
    pub fn holder(&self, queue: &str, receipt: &str) -> Option<i64> {
        let (seq, nonce) = parse_receipt(receipt)?;
        let e = self.queues.get(queue)?.entries.get(&seq)?;
        (e.receipt == nonce && nonce != 0).then_some(seq)
    }

    /// A message's current receive count.
    pub fn receive_count(&self, queue: &str, seq: i64) -> Option<u32> {
        Some(self.queues.get(queue)?.entries.get(&seq)?.receive_count)
    }

    /// A message deleted (or found missing from the table).
    ///
    /// True when that made another message receivable: it headed an ordering group that has
    /// more members (their consumers may be asleep and are to be woken).
    pub fn forget(&mut self, queue: &str, seq: i64) -> bool {
        let Some(q) = self.queues.get_mut(queue) else {
            return false;
        };
        let promotes = q.entries.get(&seq).is_some_and(|e| {
            q.ready.contains(&(e.visible_at, seq))
                && e.group
                    .as_ref()
                    .and_then(|g| q.groups.get(g))
                    .is_some_and(|members| members.len() > 1)
        });
        if let Some(e) = q.remove(seq) {
            self.body_bytes -= body_bytes(&e.body);
        }
        promotes
    }

    /// When `queue`'s next message becomes receivable (ms since the epoch; at or before now
    /// when one is), `None` when it holds none. A message in flight counts at the end of its
    /// visibility timeout; a group's later members once their head is deleted
    /// ([`Self::forget`] says when).
    pub fn next_due(&self, queue: &str) -> Option<i64> {
        self.queues
            .get(queue)
            .and_then(|q| q.ready.first().map(|&(visible_at, _)| visible_at))
    }

    /// A message hidden (or delayed) until `visible_at`.
    pub fn hide_until(&mut self, queue: &str, seq: i64, visible_at: i64) {
        if let Some(q) = self.queues.get_mut(queue) {
            q.set_visible_at(seq, visible_at);
        }
    }

    /// Messages moved to `to` as new (visible at `now`, never received).
    pub fn moved(&mut self, from: &str, to: &str, rows: &[(i64, Option<String>)], now: i64) {
        for (seq, group) in rows {
            self.forget(from, *seq);
            self.sent(to, *seq, now, group.clone());
        }
    }

    /// How many messages `queue` holds (visible or not).
    pub fn len(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.entries.len())
    }

    /// The oldest message of `queue` (the lowest sequence number: sent first).
    pub fn oldest(&self, queue: &str) -> Option<i64> {
        self.queues
            .get(queue)
            .and_then(|q| q.entries.keys().min().copied())
    }

    /// True when `queue` holds no message.
    pub fn is_empty(&self, queue: &str) -> bool {
        self.len(queue) == 0
    }

    /// How many of `queue`'s messages were never received: work waiting for its first
    /// attempt (retries waiting out their backoff are not counted).
    pub fn unreceived(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.unreceived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, queue: &str, visible_at: i64, count: u32, group: Option<&str>) -> Row {
        Row {
            seq,
            queue: queue.into(),
            visible_at,
            receive_count: count,
            group: group.map(str::to_owned),
        }
    }

    fn seqs(picked: &[Picked]) -> Vec<i64> {
        picked
            .iter()
            .map(|p| match p {
                Picked::Receive { seq, .. } | Picked::Redrive { seq, .. } => *seq,
            })
            .collect()
    }

    #[test]
    fn receives_visible_messages_oldest_visible_first_and_hides_them() {
        let mut s = Schedule::default();
        s.sent("q", 1, 100, None);
        s.sent("q", 2, 50, None);
        s.sent("q", 3, 500, None);
        let picked = s.receive("q", 200, 10, 1_000, None);
        assert_eq!(seqs(&picked), vec![2, 1]);
        assert!(s.receive("q", 200, 10, 1_000, None).is_empty());
        // Hidden until 1 200; then both come back with their counts raised, after 3
        // (visible since 500).
        let again = s.receive("q", 1_200, 10, 1_000, None);
        assert_eq!(seqs(&again), vec![3, 1, 2]);
        assert!(matches!(
            again[0],
            Picked::Receive {
                receive_count: 1,
                ..
            }
        ));
        assert!(matches!(
            again[1],
            Picked::Receive {
                receive_count: 2,
                ..
            }
        ));
    }

    #[test]
    fn max_bounds_a_receive() {
        let mut s = Schedule::default();
        for seq in 1..=5 {
            s.sent("q", seq, 0, None);
        }
        assert_eq!(seqs(&s.receive("q", 0, 2, 10, None)), vec![1, 2]);
        assert_eq!(seqs(&s.receive("q", 0, 2, 10, None)), vec![3, 4]);
        assert_eq!((s.len("q"), s.unreceived("q")), (5, 1));
        // Received again (after the visibility timeout), a message is not counted twice.
        assert_eq!(seqs(&s.receive("q", 10, 10, 10, None)), vec![5, 1, 2, 3, 4]);
        assert_eq!(s.unreceived("q"), 0);
        s.forget("q", 1);
        s.sent("q", 6, 0, None);
        assert_eq!((s.len("q"), s.unreceived("q")), (5, 1));
        s.forget("q", 6);
        assert_eq!(s.unreceived("q"), 0);
    }

    #[test]
    fn only_the_latest_receipt_holds_a_message() {
        let mut s = Schedule::default();
        s.sent("q", 7, 0, None);
        let Picked::Receive { receipt: first, .. } = s.receive("q", 0, 1, 10, None).remove(0)
        else {
            panic!("expected a receive");
        };
        assert_eq!(s.holder("q", &first), Some(7));
        let Picked::Receive {
            receipt: second, ..
        } = s.receive("q", 20, 1, 10, None).remove(0)
        else {
            panic!("expected a receive");
        };
        assert_eq!(s.holder("q", &first), None);
        assert_eq!(s.holder("q", &second), Some(7));
        assert_eq!(s.holder("other", &second), None);
        assert_eq!(s.holder("q", "garbage"), None);
        s.forget("q", 7);
        assert_eq!(s.holder("q", &second), None);
        assert!(s.is_empty("q"));
    }

    #[test]
    fn a_group_hands_out_its_oldest_message_only_and_not_while_it_is_in_flight() {
        let mut s = Schedule::default();
        s.sent("q", 1, 0, Some("g".into()));
        s.sent("q", 2, 0, Some("g".into()));
        s.sent("q", 3, 0, None);
        s.sent("q", 4, 0, Some("h".into()));
        assert_eq!(seqs(&s.receive("q", 0, 10, 100, None)), vec![1, 3, 4]);
        // 1 in flight: 2 waits behind it even when 1's visibility changes.
        s.hide_until("q", 1, 50);
        assert!(s.receive("q", 10, 10, 100, None).is_empty());
        s.forget("q", 1);
        assert_eq!(seqs(&s.receive("q", 10, 10, 100, None)), vec![2]);
    }

    #[test]
    fn redrive_moves_messages_received_too_often_to_the_dead_letter_queue() {
        let mut s = Schedule::default();
        s.sent("q", 1, 0, Some("g".into()));
        s.sent("q", 2, 0, Some("g".into()));
        let redrive = Some(("dlq", 2));
        assert_eq!(seqs(&s.receive("q", 0, 10, 10, redrive)), vec![1]);
        assert_eq!(seqs(&s.receive("q", 10, 10, 10, redrive)), vec![1]);
        // Received twice: the third look moves it, and its group's next message is handed out.
        let third = s.receive("q", 20, 10, 10, redrive);
        assert_eq!(
            third[0],
            Picked::Redrive {
                seq: 1,
                receive_count: 2
            }
        );
        assert_eq!(seqs(&third), vec![1, 2]);
        assert_eq!((s.len("q"), s.len("dlq")), (1, 1));
    }

    #[test]
    fn recovered_messages_persist_their_count_and_a_rebuild_keeps_what_memory_knows() {
        let mut s = Schedule::from_rows(vec![
            row(1, "q", 0, 3, None),
            row(2, "q", 0, 0, Some("g")),
            row(3, "q", 0, 0, Some("g")),
        ]);
        let picked = s.receive("q", 0, 10, 100, None);
        assert_eq!(seqs(&picked), vec![1, 2]);
        assert!(matches!(
            picked[0],
            Picked::Receive {
                receive_count: 4,
                persist_count: true,
                ..
            }
        ));
        s.sent("q", 4, 0, None);
        // The table now also holds row 5 (written by another process) and lost row 1.
        s.rebuild(vec![
            row(2, "q", 0, 0, Some("g")),
            row(3, "q", 0, 0, Some("g")),
            row(4, "q", 0, 0, None),
            row(5, "q", 0, 0, None),
        ]);
        // 2 is still in flight (hidden until 100), so its group waits; 4 and 5 are new.
        assert_eq!(seqs(&s.receive("q", 10, 10, 100, None)), vec![4, 5]);
        assert_eq!(s.receive_count("q", 2), Some(1));
        assert!(!s.is_stale());
        s.mark_stale();
        assert!(s.is_stale());
    }

    #[test]
    fn data_version_moves_only_after_it_was_seen() {
        let mut s = Schedule::default();
        assert!(!s.data_version_moved(4));
        assert!(!s.data_version_moved(4));
        assert!(s.data_version_moved(5));
    }

    #[test]
    fn rows_of_a_group_loaded_out_of_order_still_hand_out_the_oldest() {
        let s_rows = vec![row(9, "q", 0, 0, Some("g")), row(3, "q", 0, 0, Some("g"))];
        let mut s = Schedule::from_rows(s_rows);
        assert_eq!(seqs(&s.receive("q", 0, 10, 100, None)), vec![3]);
    }

    #[test]
    fn moved_messages_arrive_new() {
        let mut s = Schedule::default();
        s.sent("dlq", 5, 0, None);
        s.moved("dlq", "q", &[(5, Some("g".into()))], 42);
        assert!(s.is_empty("dlq"));
        let picked = s.receive("q", 42, 10, 100, None);
        assert!(matches!(
            picked[0],
            Picked::Receive {
                seq: 5,
                receive_count: 1,
                persist_count: false,
                ..
            }
        ));
    }

    #[test]
    fn bodies_kept_from_the_send_come_back_on_receive_within_the_budget() {
        let mut s = Schedule::default();
        let small: Body = (Arc::from("m1"), Arc::from("{}"));
        s.sent_with_body("q", 1, 0, None, Some(small.clone()));
        let big: Body = (Arc::from("m2"), Arc::from("x".repeat(BODY_CACHE_BYTES)));
        s.sent_with_body("q", 2, 0, None, Some(big));
        let picked = s.receive("q", 0, 10, 10, None);
        assert!(matches!(&picked[0], Picked::Receive { body: Some(b), .. } if *b == small));
        // Over the budget: read from the table instead.
        assert!(matches!(&picked[1], Picked::Receive { body: None, .. }));
        s.forget("q", 1);
        s.forget("q", 2);
        assert_eq!(s.body_bytes, 0);
        assert!(s.needs_check(CHECK_EVERY_MS));
        s.checked(CHECK_EVERY_MS);
        assert!(!s.needs_check(CHECK_EVERY_MS + 1));
        s.mark_stale();
        assert!(s.needs_check(CHECK_EVERY_MS + 1));
    }

    #[test]
    fn receipts_round_trip() {
        assert_eq!(parse_receipt(&receipt(12, 34)), Some((12, 34)));
        assert_eq!(parse_receipt("12"), None);
        assert_eq!(parse_receipt("a:b"), None);
    }
}
