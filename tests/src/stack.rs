//! A running Hookline for end-to-end tests on both paths: `hookline serve`'s composition
//! (`Local`) with its queue workers, or the three handlers on moto wired as their Lambdas wire
//! them, with the SQS event sources (the deliveries queue and its FIFO twin included) played
//! by background pumps. And the calls tests make on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::auth::Principal;
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use serde_json::{json, Value};

use crate::receiver::{Captured, TestReceiver};

/// Longest wait for something the pipeline should do.
pub const PATIENCE: Duration = Duration::from_secs(40);

/// A principal with `permissions` (space-separated, as the token claim holds them).
pub fn principal(sub: &str, permissions: &str) -> Principal {
    Principal::from_claims(sub, Some(&Value::String(permissions.into())))
}

/// A running Hookline: the API, and its queues being consumed.
#[async_trait]
pub trait Stack: Send + Sync {
    /// The API.
    fn router(&self) -> &Api;
    /// Puts a raw message on the events queue, as a platform service would over SQS.
    async fn push_event_message(&self, body: &str);
    /// Everything the store holds, as bytes: the SQLite file and its WAL, or every item of
    /// the DynamoDB table (what a stolen backup or `dynamodb:Scan` would see).
    async fn raw_store(&self) -> Vec<u8>;
    /// Every row the store holds, one line each, sorted: `<table>|<column>=<value>|…` for
    /// each SQLite table, `<item>|<attribute>=<value>|…` (attributes sorted) for each
    /// DynamoDB item. What a test compares to prove a change touched nothing else.
    async fn raw_rows(&self) -> Vec<String>;
    /// Stops the workers or pumps.
    async fn stop(self: Box<Self>);
}

struct Embedded {
    path: std::path::PathBuf,
    local: hookline::Local,
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// `hookline serve`'s composition on a fresh database named after `name`, workers running.
pub async fn embedded(name: &str, settings: Settings, delivery: DeliverSettings) -> Box<dyn Stack> {
    let path = crate::temp_db(name);
    let local = hookline::Local::open_with(&path, settings, "permissions".into(), delivery)
        .await
        .expect("open the embedded store");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = local.spawn_workers(stopped);
    Box::new(Embedded {
        path,
        local,
        stop,
        workers,
    })
}

#[async_trait]
impl Stack for Embedded {
    fn router(&self) -> &Api {
        &self.local.router
    }
    async fn push_event_message(&self, body: &str) {
        self.local
            .queues
            .events
            .send(body, Duration::ZERO, None)
            .await
            .expect("send to the events queue");
    }
    async fn raw_store(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(&self.path).expect("read the SQLite file");
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        if let Ok(more) = std::fs::read(std::path::PathBuf::from(wal)) {
            bytes.extend(more);
        }
        bytes
    }
    async fn raw_rows(&self) -> Vec<String> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open the SQLite file to read");
            let tables: Vec<String> = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .expect("tables");
            let mut rows = Vec::new();
            for table in tables {
                let mut st = c.prepare(&format!("SELECT * FROM {table}")).expect("select");
                let columns: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
                let mut q = st.query([]).expect("query");
                while let Some(r) = q.next().expect("row") {
                    let mut line = table.clone();
                    for (i, name) in columns.iter().enumerate() {
                        let value = match r.get_ref(i).expect("value") {
                            rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                            rusqlite::types::ValueRef::Real(x) => x.to_string(),
                            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                            rusqlite::types::ValueRef::Blob(b) => format!("{b:02x?}"),
                        };
                        line.push_str(&format!("|{name}={value}"));
                    }
                    rows.push(line);
                }
            }
            rows.sort();
            rows
        })
        .await
        .expect("read rows")
    }
    async fn stop(self: Box<Self>) {
        let _ = self.stop.send(true);
        for w in self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
    }
}

struct Moto {
    router: Api,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    sqs: aws_sdk_sqs::Client,
    events_url: String,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

/// Plays an SQS event source with batches of up to `batch` messages (10 for the standard
/// queues, 1 for the FIFO one, as in `template.yaml`): receive, hand to `handler`, delete
/// what it did not report failed; forever.
pub fn pump_batches_of<F, Fut>(
    batch: i32,
    sqs: aws_sdk_sqs::Client,
    url: String,
    handler: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Vec<hookline_core::delivery::ReceivedMessage>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<String>> + Send,
{
    tokio::spawn(async move {
        loop {
            let batch = crate::sqs_receive_up_to(&sqs, &url, batch).await;
            if batch.is_empty() {
                continue;
            }
            let failed = handler(batch.clone()).await;
            for m in batch {
                if !failed.contains(&m.message_id) {
                    sqs.delete_message()
                        .queue_url(&url)
                        .receipt_handle(&m.receipt.0)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
    })
}

/// The three handlers on a fresh moto table and queue set named after `name`, with pumps
/// for the events queue and both deliveries queues; credentials sealed with data keys from
/// moto's KMS, as on AWS.
pub async fn moto(name: &str, delivery: DeliverSettings) -> Box<dyn Stack> {
    let (dynamo, sqs, r) = crate::fresh_aws(name).await;
    let settings = crate::local_settings();
    let http = Arc::new(ReqwestSender::new(settings.targets, "Hookline/test").expect("client"));
    let kms = aws_sdk_kms::Client::new(&crate::moto_config().await);
    let aws = crate::aws_ports_with_kms(&dynamo, &sqs, &kms, &r);
    let router = Api::from_ports(&aws.ports, http.clone(), settings, None);
    let ingest = Ingest::from_ports(
        &aws.ports,
        aws.dead_letters(&r.events_dlq_url),
        IngestSettings::default(),
    );
    let deliver = Deliver::from_ports(&aws.ports, http, delivery);
    let pumps = vec![
        pump_batches_of(10, sqs.clone(), r.events_queue_url.clone(), move |batch| {
            let ingest = ingest.clone();
            async move { ingest.handle_batch(&batch).await }
        }),
        pump_batches_of(10, sqs.clone(), r.deliveries_queue_url.clone(), {
            let deliver = deliver.clone();
            move |batch| {
                let deliver = deliver.clone();
                async move { deliver.handle_batch(&batch).await }
            }
        }),
        pump_batches_of(
            1,
            sqs.clone(),
            r.ordered_deliveries_queue_url.clone(),
            move |batch| {
                let deliver = deliver.clone();
                async move { deliver.handle_batch(&batch).await }
            },
        ),
    ];
    Box::new(Moto {
        router,
        dynamo,
        table: r.table_name.clone(),
        sqs,
        events_url: r.events_queue_url.clone(),
        pumps,
    })
}

#[async_trait]
impl Stack for Moto {
    fn router(&self) -> &Api {
        &self.router
    }
    async fn push_event_message(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.events_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage to the events queue");
    }
    async fn raw_store(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan");
            for item in out.items() {
                bytes.extend(format!("{item:?}\n").into_bytes());
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        bytes
    }
    async fn raw_rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan");
            for item in out.items() {
                let sorted: std::collections::BTreeMap<_, _> = item.iter().collect();
                let mut line = String::from("item");
                for (name, value) in sorted {
                    line.push_str(&format!("|{name}={value:?}"));
                }
                rows.push(line);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        rows.sort();
        rows
    }
    async fn stop(self: Box<Self>) {
        for p in self.pumps {
            p.abort();
        }
    }
}

/// One API call as `who`: status and JSON body (null when empty).
pub async fn call(
    stack: &dyn Stack,
    who: &Principal,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http::Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .expect("request");
    let response = stack
        .router()
        .handle(request, Caller::Principal(who.clone()))
        .await;
    let status = response.status().as_u16();
    let json = if response.body().is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(response.body()).expect("JSON answer")
    };
    (status, json)
}

/// Creates a webhook as `who`; its id.
pub async fn create(stack: &dyn Stack, who: &Principal, body: Value) -> String {
    let (status, created) = call(stack, who, "POST", "/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "create: {created}");
    created["id"].as_str().expect("id").to_owned()
}

/// Reads a webhook as `who`.
pub async fn get(stack: &dyn Stack, who: &Principal, id: &str) -> Value {
    let (status, w) = call(stack, who, "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200, "get {id}: {w}");
    w
}

/// Publishes an event over `POST /v1/events`.
pub async fn publish(stack: &dyn Stack, who: &Principal, id: &str, event_type: &str, urn: &str) {
    let (status, body) = call(
        stack,
        who,
        "POST",
        "/v1/events",
        Some(json!({"id": id, "type": event_type, "urn": urn, "data": {}})),
    )
    .await;
    assert_eq!(status, 202, "publish {id}: {body}");
}

/// Polls `check` until it returns `Some`, or fails saying what did not happen.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The event bodies a receiver got (verification probes left out).
pub fn delivered(rx: &TestReceiver) -> Vec<Value> {
    rx.requests()
        .iter()
        .filter(|r| r.method == "POST" && !is_probe(r))
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

/// The ids of the events a receiver got, in arrival order.
pub fn delivered_ids(rx: &TestReceiver) -> Vec<String> {
    delivered(rx)
        .iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect()
}

/// True for the endpoint check's signed test POST.
pub fn is_probe(r: &Captured) -> bool {
    r.header("webhook-id")
        .is_some_and(|id| id.starts_with("msg_test_"))
}
