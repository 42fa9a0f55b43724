//! Cost per million deliveries on the AWS path. The three handlers run in-process on moto, as
//! their Lambdas wire them, with Lambda's SQS poller played here; every AWS request goes
//! through a counting proxy in front of moto, which tallies requests by component, service
//! and action, and DynamoDB capacity units from the items' sizes. Dated list prices turn the
//! tallies, the invocation count and the measured handler durations into dollars.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::aws::destinations::{AwsDestinations, CALL_TIMEOUT};
use hookline_core::adapters::aws::dynamodb::APP_DAY;
use hookline_core::adapters::aws::sqs::SqsQueue;
use hookline_core::adapters::aws::AwsPorts;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::auth::Principal;
use hookline_core::retry::RetryPolicy;
use hookline_core::target::TargetPolicy;
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use super::receiver::Receiver;
use super::{intake_body, pad_for, BenchError};

/// `MemorySize` of the api function in template.yaml.
pub const API_MEMORY_MB: u32 = 256;
/// `MemorySize` of the ingest function in template.yaml.
pub const INGEST_MEMORY_MB: u32 = 256;
/// `MemorySize` of the deliver function in template.yaml.
pub const DELIVER_MEMORY_MB: u32 = 512;
/// `BatchSize` default of both SQS event sources in template.yaml.
pub const SQS_BATCH_SIZE: i32 = 10;

/// When the prices below were written down, and what they are.
pub const PRICES_AS_OF: &str = "2026-11-26: AWS list prices, us-east-1, first tier (DynamoDB on-demand as reduced on 2024-11-01; Lambda arm64)";
/// SQS standard queue, $ per million requests (each 64 KiB of payload is one request).
pub const SQS_PER_MILLION_REQUESTS: f64 = 0.40;
/// KMS, $ per million requests ($0.03 per 10 000; the key itself is $1 a month, not per
/// delivery).
pub const KMS_PER_MILLION_REQUESTS: f64 = 3.0;
/// DynamoDB on-demand, $ per million write request units.
pub const DYNAMODB_PER_MILLION_WRU: f64 = 0.625;
/// DynamoDB on-demand, $ per million read request units.
pub const DYNAMODB_PER_MILLION_RRU: f64 = 0.125;
/// Lambda, $ per million invocations.
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
/// Lambda on arm64, $ per GB-second.
pub const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// API Gateway HTTP API, $ per million requests.
pub const HTTP_API_PER_MILLION_REQUESTS: f64 = 1.00;

/// What the GB-seconds line rests on.
pub const DURATION_CAVEAT: &str = "durations: handler wall time against moto (one Python process, slower as its table grows), so GB-seconds are an upper bound; request and unit counts do not depend on it";

/// A cost run's size.
#[derive(Debug, Clone, Serialize)]
pub struct CostOptions {
    /// Webhooks subscribed to every event.
    pub webhooks: usize,
    /// Webhooks the App holds in all (at least `webhooks`); the others name URNs the events
    /// never have, so they cost fan-out only what reading them costs.
    pub webhooks_per_app: usize,
    /// Events posted.
    pub events: usize,
    /// Delivered body size, in bytes.
    pub body_bytes: usize,
    /// Whether ingest caches routes per App (false: every event reads its App's routes, as
    /// before the cache, for comparison).
    pub route_cache: bool,
    /// Whether the webhooks deliver to an SQS queue through an assumed role (component
    /// `destination`: STS and the integrator's SQS) instead of an HTTPS endpoint.
    pub sqs_destination: bool,
}

impl Default for CostOptions {
    fn default() -> Self {
        Self {
            webhooks: 10,
            webhooks_per_app: 10,
            events: 200,
            body_bytes: 1024,
            route_cache: true,
            sqs_destination: false,
        }
    }
}

/// SQS bills each 64 KiB of a request's payload as one request.
pub const SQS_BILLING_CHUNK: usize = 64 * 1024;

/// Requests of one (component, service, action).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionTally {
    /// Who made them: `api`, `ingest`, `deliver` or `poller` (Lambda's SQS event source).
    pub component: String,
    /// `DynamoDB` or `SQS`.
    pub service: String,
    /// The API action.
    pub action: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests billed: for SQS, one per 64 KiB of the larger of request and answer (wire
    /// JSON, an upper bound on the payload); else the requests.
    pub billed_requests: u64,
    /// DynamoDB read request units (estimated from item sizes).
    pub read_units: f64,
    /// DynamoDB write request units (estimated from item sizes).
    pub write_units: f64,
}

/// One Lambda function's share.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionTally {
    /// Function name.
    pub function: String,
    /// Invocations (api: one per event; ingest and deliver: one per batch).
    pub invocations: u64,
    /// Memory size, MB.
    pub memory_mb: u32,
    /// Sum of billed durations (each rounded up to 1 ms), in seconds.
    pub billed_s: f64,
}

/// A priced line.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    /// What is priced.
    pub item: String,
    /// Units per delivery.
    pub per_delivery: f64,
    /// $ per million deliveries.
    pub usd_per_million: f64,
}

/// What fan-out cost per event.
#[derive(Debug, Clone, Serialize)]
pub struct PerEvent {
    /// AWS requests ingest made.
    pub ingest_requests: f64,
    /// DynamoDB read units ingest used (the App's routes, their version, the claim).
    pub ingest_read_units: f64,
    /// Ingest's billed time, ms.
    pub ingest_ms: f64,
}

/// What delivering to an SQS destination adds, per delivery: STS (no charge) and the
/// integrator's SQS requests (billed to their account, not in Hookline's total).
#[derive(Debug, Clone, Serialize)]
pub struct DestinationCost {
    /// STS requests (AssumeRole, once per role per session hour and deliverer).
    pub sts_per_delivery: f64,
    /// SQS requests to the integrator's queue.
    pub sqs_per_delivery: f64,
    /// What those SQS requests cost the integrator, $ per million deliveries.
    pub integrator_usd_per_million: f64,
}

/// The proxy component of the deliverer's calls to STS and the integrator's queue.
pub const DESTINATION: &str = "destination";

/// What a cost run found.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// The run's size.
    pub options: CostOptions,
    /// Deliveries received.
    pub deliveries: u64,
    /// Fan-out's share, per event.
    pub per_event: PerEvent,
    /// What an SQS destination adds (`--sqs-destination`).
    pub destination: Option<DestinationCost>,
    /// Requests by component, service and action.
    pub actions: Vec<ActionTally>,
    /// Invocations and durations by function.
    pub functions: Vec<FunctionTally>,
    /// The priced lines.
    pub lines: Vec<CostLine>,
    /// $ per million deliveries, all lines.
    pub usd_per_million: f64,
    /// Where the prices come from.
    pub prices_as_of: String,
}

type Tallies = Arc<Mutex<BTreeMap<(String, String, String), ActionTally>>>;
type Sizes = Arc<Mutex<ItemSizes>>;

/// A proxy in front of moto: `/{component}/...` is forwarded to moto as `/...` and counted.
struct CountingProxy {
    addr: SocketAddr,
    tallies: Tallies,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn size_of(v: &serde_json::Value) -> f64 {
    serde_json::to_vec(v).map_or(0, |b| b.len()) as f64
}

/// Sizes (wire JSON bytes) of the items written through the proxy, by table and key: an
/// update or a delete is charged by the size of the item it touches, as DynamoDB charges.
#[derive(Debug, Default)]
pub struct ItemSizes(std::collections::HashMap<String, f64>);

impl ItemSizes {
    fn key(table: &serde_json::Value, key: &serde_json::Value) -> String {
        format!("{table}|{}|{}", key["PK"], key["SK"])
    }

    fn put(&mut self, table: &serde_json::Value, item: &serde_json::Value) -> f64 {
        let size = size_of(item);
        self.0.insert(Self::key(table, item), size);
        size
    }

    /// An update's size: the larger of the item before and after (its new values added).
    fn update(
        &mut self,
        table: &serde_json::Value,
        key: &serde_json::Value,
        values: &serde_json::Value,
    ) -> f64 {
        let entry = self
            .0
            .entry(Self::key(table, key))
            .or_insert_with(|| size_of(key));
        *entry += if values.is_null() {
            0.0
        } else {
            size_of(values)
        };
        *entry
    }

    fn delete(&mut self, table: &serde_json::Value, key: &serde_json::Value) -> f64 {
        self.0
            .remove(&Self::key(table, key))
            .unwrap_or_else(|| size_of(key))
    }
}

/// DynamoDB on-demand units of one request, from the JSON on the wire: writes are 1 unit a
/// KiB of the item written, updated or deleted (sizes of items written earlier remembered
/// in `sizes`; 2 units in a transaction; an event item's put one more, for its index entry), reads 1 unit per 4 KiB (half when eventually
/// consistent). Wire JSON is larger than DynamoDB's item size, so these are upper bounds.
pub fn dynamodb_units(
    sizes: &mut ItemSizes,
    action: &str,
    request: &serde_json::Value,
    response: &serde_json::Value,
) -> (f64, f64) {
    let units = |bytes: f64| (bytes / 1024.0).ceil().max(1.0);
    let consistency = if request["ConsistentRead"].as_bool() == Some(true) {
        1.0
    } else {
        0.5
    };
    let read = |bytes: f64| (bytes / 4096.0).ceil().max(1.0) * consistency;
    let table = &request["TableName"];
    match action {
        "GetItem" => (read(size_of(&response["Item"])), 0.0),
        "Query" | "Scan" => {
            let bytes = response["Items"]
                .as_array()
                .map_or(0.0, |items| items.iter().map(size_of).sum());
            (read(bytes), 0.0)
        }
        // An event item also writes its keys to the events-by-app index (one unit);
        // updates of its other attributes write nothing there.
        "PutItem" => {
            let written = units(sizes.put(table, &request["Item"]));
            let indexed = request["Item"].get(APP_DAY).is_some();
            (0.0, written + if indexed { 1.0 } else { 0.0 })
        }
        "UpdateItem" => (
            0.0,
            units(sizes.update(
                table,
                &request["Key"],
                &request["ExpressionAttributeValues"],
            )),
        ),
        "DeleteItem" => (0.0, units(sizes.delete(table, &request["Key"]))),
        "TransactWriteItems" => {
            let items = request["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let units: f64 = items
                .iter()
                .map(|i| {
                    2.0 * if i["Put"].is_object() {
                        units(sizes.put(&i["Put"]["TableName"], &i["Put"]["Item"]))
                    } else if i["Update"].is_object() {
                        let u = &i["Update"];
                        units(sizes.update(
                            &u["TableName"],
                            &u["Key"],
                            &u["ExpressionAttributeValues"],
                        ))
                    } else if i["Delete"].is_object() {
                        units(sizes.delete(&i["Delete"]["TableName"], &i["Delete"]["Key"]))
                    } else {
                        1.0
                    }
                })
                .sum();
            (0.0, units)
        }
        "BatchWriteItem" => {
            let tables = request["RequestItems"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let units: f64 = tables
                .iter()
                .flat_map(|(name, requests)| {
                    let name = serde_json::Value::String(name.clone());
                    requests
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |r| (name.clone(), r))
                })
                .map(|(name, r)| {
                    if r["PutRequest"].is_object() {
                        units(sizes.put(&name, &r["PutRequest"]["Item"]))
                    } else {
                        units(sizes.delete(&name, &r["DeleteRequest"]["Key"]))
                    }
                })
                .sum();
            (0.0, units)
        }
        _ => (0.0, 0.0),
    }
}

impl CountingProxy {
    async fn start(upstream: String) -> std::io::Result<Self> {
        let tallies: Tallies = Arc::default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = tallies.clone();
        let sizes: Sizes = Arc::default();
        let (addr, server) = super::serve_loopback(move |req| {
            let (tallies, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
            let sizes = sizes.clone();
            async move { forward(&tallies, &sizes, &client, &upstream, req).await }
        })
        .await?;
        Ok(Self {
            addr,
            tallies,
            server,
        })
    }

    fn endpoint(&self, component: &str) -> String {
        format!("http://{}/{component}", self.addr)
    }

    fn take(&self) -> Vec<ActionTally> {
        std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|p| p.into_inner()))
            .into_values()
            .collect()
    }
}

async fn forward(
    tallies: &Tallies,
    sizes: &Sizes,
    client: &reqwest::Client,
    upstream: &str,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let (component, rest) = match path.trim_start_matches('/').split_once('/') {
        Some((c, rest)) => (c.to_owned(), format!("/{rest}")),
        None => (path.trim_start_matches('/').to_owned(), "/".to_owned()),
    };
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (service, action) = match target.split_once('.') {
        Some((s, a)) if s.starts_with("DynamoDB") => ("DynamoDB".to_owned(), a.to_owned()),
        Some(("TrentService", a)) => ("KMS".to_owned(), a.to_owned()),
        Some((_, a)) => ("SQS".to_owned(), a.to_owned()),
        // Query-protocol services (STS): the signature's scope names the service, the form
        // body the action.
        None => (
            signed_service(&parts.headers).unwrap_or_else(|| "other".to_owned()),
            form_action(&body).unwrap_or(target.clone()),
        ),
    };
    let mut outbound = client.request(parts.method.clone(), format!("{upstream}{rest}"));
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            outbound = outbound.header(name, value);
        }
    }
    let answer = match outbound.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            let mut response = http::Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await.unwrap_or_default();
    let billed = if service == "SQS" {
        body.len()
            .max(answer_body.len())
            .div_ceil(SQS_BILLING_CHUNK)
            .max(1) as u64
    } else {
        1
    };
    let (read_units, write_units) = if service == "DynamoDB" {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let response: serde_json::Value = serde_json::from_slice(&answer_body).unwrap_or_default();
        let mut sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
        dynamodb_units(&mut sizes, &action, &request, &response)
    } else {
        (0.0, 0.0)
    };
    {
        let mut tallies = tallies.lock().unwrap_or_else(|p| p.into_inner());
        let t = tallies
            .entry((component.clone(), service.clone(), action.clone()))
            .or_insert_with(|| ActionTally {
                component,
                service,
                action,
                ..ActionTally::default()
            });
        t.requests += 1;
        t.billed_requests += billed;
        t.read_units += read_units;
        t.write_units += write_units;
    }
    let mut response = http::Response::new(Full::new(answer_body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// The service a SigV4 `authorization` header's credential scope names (`.../sts/aws4_request`),
/// upper-cased.
fn signed_service(headers: &http::HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    Some(scope.split('/').nth(3)?.to_uppercase())
}

/// The `Action` of a query-protocol form body.
fn form_action(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
}

async fn sdk_config(endpoint: String) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await
}

async fn clients(
    endpoint: String,
) -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_sqs::Client,
    aws_sdk_kms::Client,
) {
    let config = sdk_config(endpoint).await;
    (
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
        aws_sdk_kms::Client::new(&config),
    )
}

fn billed(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil() / 1000.0
}

/// One poll of Lambda's SQS event source: receive a batch, invoke `handler` with it, delete
/// what it handled. `None` for an empty poll, else the invocation's billed seconds.
async fn poll_once<F, Fut>(
    source: &SqsQueue,
    wait_seconds: i32,
    handler: F,
) -> Result<Option<f64>, BenchError>
where
    F: FnOnce(Vec<hookline_core::delivery::ReceivedMessage>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let batch = source
        .receive(SQS_BATCH_SIZE, wait_seconds)
        .await
        .map_err(|e| BenchError::Run(e.to_string()))?;
    if batch.is_empty() {
        return Ok(None);
    }
    let started = Instant::now();
    let failed = handler(batch.clone()).await;
    let seconds = billed(started.elapsed());
    let done: Vec<_> = batch
        .iter()
        .filter(|m| !failed.contains(&m.message_id))
        .map(|m| &m.receipt)
        .collect();
    source
        .delete_batch(&done)
        .await
        .map_err(|e| BenchError::Run(e.to_string()))?;
    Ok(Some(seconds))
}

/// Runs the pipeline on moto (`AWS_ENDPOINT_URL`) through the counting proxy and prices it.
pub async fn run(options: &CostOptions) -> Result<CostReport, BenchError> {
    let moto = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        BenchError::Setup(
            "AWS_ENDPOINT_URL is not set: the cost run creates its own table and queues and needs moto (tests/run.sh starts one)".into(),
        )
    })?;
    let proxy = CountingProxy::start(moto.trim_end_matches('/').to_owned())
        .await
        .map_err(|e| BenchError::Setup(format!("counting proxy: {e}")))?;
    let (setup_dynamo, setup_sqs, setup_kms) = clients(proxy.endpoint("setup")).await;
    let nanos = super::unique_suffix();
    let names = hookline_infra::ResourceNames::with_prefix(&format!("bench-cost-{nanos}"));
    let r = hookline_infra::bootstrap(
        &setup_dynamo,
        &setup_sqs,
        &setup_kms,
        &names,
        &RetryPolicy::default(),
    )
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let http = Arc::new(
        ReqwestSender::new(settings.targets, "Hookline/bench")
            .map_err(|e| BenchError::Setup(e.to_string()))?,
    );

    // Each function with its own clients (the proxy counts requests per function), wired as
    // the Lambdas wire themselves.
    let function = |name: &'static str| {
        let proxy = &proxy;
        let r = &r;
        let namespace = settings.namespace.clone();
        async move {
            let (dynamo, sqs, kms) = clients(proxy.endpoint(name)).await;
            AwsPorts::new(dynamo, sqs, kms, r.aws_resources(), namespace)
        }
    };
    // AWS destinations: STS and the integrator's SQS through the proxy as `destination` (the
    // api's check on save as `setup`, which is not priced).
    let with_destinations = |mut aws: AwsPorts, component: &'static str| {
        let endpoint = proxy.endpoint(component);
        async move {
            if options.sqs_destination {
                aws.ports.destinations = Some(Arc::new(AwsDestinations::new(
                    sdk_config(endpoint).await,
                    CALL_TIMEOUT,
                )));
            }
            aws
        }
    };
    let router = Api::from_ports(
        &with_destinations(function("api").await, "setup")
            .await
            .ports,
        http.clone(),
        settings.clone(),
        None,
    );
    let ingest_aws = function("ingest").await;
    let ingest = Ingest::from_ports(
        &ingest_aws.ports,
        ingest_aws.dead_letters(&r.events_dlq_url),
        IngestSettings {
            route_cache_max_age: if options.route_cache {
                IngestSettings::default().route_cache_max_age
            } else {
                Duration::ZERO
            },
            ..IngestSettings::default()
        },
    );
    let deliver = Deliver::from_ports(
        &with_destinations(function("deliver").await, "destination")
            .await
            .ports,
        http,
        DeliverSettings {
            webhook_cache_ttl: hookline_deliver::LAMBDA_WEBHOOK_CACHE_TTL,
            ..DeliverSettings::default()
        },
    );
    // Lambda's SQS poller
    let (_, sqs, _) = clients(proxy.endpoint("poller")).await;
    let events_source = SqsQueue::new(sqs.clone(), r.events_queue_url.clone());
    let deliveries_source = SqsQueue::new(sqs, r.deliveries_queue_url.clone());

    let (w, e) = (options.webhooks, options.events);
    let receiver = Receiver::start(e, w)
        .await
        .map_err(|e| BenchError::Setup(format!("receiver: {e}")))?;
    let caller = || {
        Caller::Principal(Principal::from_claims(
            "bench",
            Some(&serde_json::Value::String(
                "edit-app:A1 publish-events:A1".into(),
            )),
        ))
    };
    let post = |path: &str, body: serde_json::Value| {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| BenchError::Setup(e.to_string()))
    };
    let destination = match options.sqs_destination {
        true => Some(
            Destination::create(&moto, &router, caller(), &format!("bench-cost-{nanos}")).await?,
        ),
        false => None,
    };
    for i in 0..w {
        let body = match &destination {
            Some(d) => {
                serde_json::json!({"name": format!("bench {i}"), "destination": d.input, "eventTypes": [super::BENCH_EVENT_TYPE]})
            }
            None => {
                serde_json::json!({"name": format!("bench {i}"), "url": format!("{}/w/{i}", receiver.url()), "eventTypes": [super::BENCH_EVENT_TYPE]})
            }
        };
        let created = router
            .handle(post("/v1/webhooks?appId=A1", body)?, caller())
            .await;
        if created.status() != 201 {
            return Err(BenchError::Run(format!(
                "creating a webhook: {} {}",
                created.status(),
                String::from_utf8_lossy(created.body())
            )));
        }
    }
    let others = options.webhooks_per_app.saturating_sub(w);
    create_others(&setup_dynamo, &r.table_name, others, &settings).await?;
    // Only the per-event path is priced: setup and webhook creation are dropped here.
    let _ = proxy.take();

    let pad = pad_for(options.body_bytes);
    let mut api_billed = 0.0;
    for seq in 0..e {
        let started = Instant::now();
        let accepted = router
            .handle(post("/v1/events", intake_body(seq, pad))?, caller())
            .await;
        api_billed += billed(started.elapsed());
        if accepted.status() != 202 {
            return Err(BenchError::Run(format!(
                "posting an event: {}",
                accepted.status()
            )));
        }
    }
    let (mut ingest_calls, mut ingest_billed) = (0u64, 0.0);
    let (mut empty, mut empty_receives) = (0, 0u64);
    while empty < 2 {
        let invoked = poll_once(&events_source, 0, |batch| {
            let ingest = ingest.clone();
            async move { ingest.handle_batch(&batch).await }
        })
        .await?;
        match invoked {
            Some(seconds) => {
                empty = 0;
                ingest_calls += 1;
                ingest_billed += seconds;
            }
            None => {
                empty += 1;
                empty_receives += 1;
            }
        }
    }
    let (mut deliver_calls, mut deliver_billed) = (0u64, 0.0);
    let target = (w * e) as u64;
    let (mut last, mut since) = (0, Instant::now());
    let mut in_queue = 0;
    let received = |in_queue: u64| match &destination {
        Some(_) => in_queue,
        None => receiver.distinct(),
    };
    while received(in_queue) < target {
        if since.elapsed() > Duration::from_secs(60) {
            return Err(BenchError::Run(format!(
                "stalled: {} of {target} deliveries received",
                received(in_queue)
            )));
        }
        if let Some(d) = &destination {
            in_queue += d.drain().await?;
        }
        let invoked = poll_once(&deliveries_source, 1, |batch| {
            let deliver = deliver.clone();
            async move { deliver.handle_batch(&batch).await }
        })
        .await?;
        match invoked {
            Some(seconds) => {
                deliver_calls += 1;
                deliver_billed += seconds;
            }
            None => empty_receives += 1,
        }
        if received(in_queue) != last {
            (last, since) = (received(in_queue), Instant::now());
        }
    }
    // Empty receives are idle polling, which Lambda's poller does whatever the load: not
    // per delivery, so not priced.
    let mut actions = proxy.take();
    if let Some(t) = actions
        .iter_mut()
        .find(|t| t.component == "poller" && t.action == "ReceiveMessage")
    {
        t.requests = t.requests.saturating_sub(empty_receives);
        t.billed_requests = t.billed_requests.saturating_sub(empty_receives);
    }
    let functions = vec![
        FunctionTally {
            function: "api".into(),
            invocations: e as u64,
            memory_mb: API_MEMORY_MB,
            billed_s: api_billed,
        },
        FunctionTally {
            function: "ingest".into(),
            invocations: ingest_calls,
            memory_mb: INGEST_MEMORY_MB,
            billed_s: ingest_billed,
        },
        FunctionTally {
            function: "deliver".into(),
            invocations: deliver_calls,
            memory_mb: DELIVER_MEMORY_MB,
            billed_s: deliver_billed,
        },
    ];
    Ok(price(options.clone(), target, actions, functions))
}

/// Turns tallies into $ per million deliveries with the dated prices.
pub fn price(
    options: CostOptions,
    deliveries: u64,
    actions: Vec<ActionTally>,
    functions: Vec<FunctionTally>,
) -> CostReport {
    let per = |x: f64| x / deliveries.max(1) as f64;
    let sqs_requests: u64 = actions
        .iter()
        .filter(|t| t.service == "SQS" && t.component != DESTINATION)
        .map(|t| t.billed_requests)
        .sum();
    let destination = options.sqs_destination.then(|| {
        let of = |service: &str| {
            actions
                .iter()
                .filter(|t| t.component == DESTINATION && t.service == service)
                .map(|t| t.billed_requests)
                .sum::<u64>() as f64
        };
        DestinationCost {
            sts_per_delivery: per(of("STS")),
            sqs_per_delivery: per(of("SQS")),
            integrator_usd_per_million: per(of("SQS")) * SQS_PER_MILLION_REQUESTS,
        }
    });
    let kms_requests: u64 = actions
        .iter()
        .filter(|t| t.service == "KMS")
        .map(|t| t.requests)
        .sum();
    let events = options.events.max(1) as f64;
    let ingest = actions.iter().filter(|t| t.component == "ingest");
    let per_event = PerEvent {
        ingest_requests: ingest.clone().map(|t| t.requests).sum::<u64>() as f64 / events,
        ingest_read_units: ingest.map(|t| t.read_units).sum::<f64>() / events,
        ingest_ms: functions
            .iter()
            .find(|f| f.function == "ingest")
            .map_or(0.0, |f| f.billed_s * 1000.0 / events),
    };
    let rru: f64 = actions.iter().map(|t| t.read_units).sum();
    let wru: f64 = actions.iter().map(|t| t.write_units).sum();
    let invocations: u64 = functions.iter().map(|f| f.invocations).sum();
    let gb_s: f64 = functions
        .iter()
        .map(|f| f.billed_s * f64::from(f.memory_mb) / 1024.0)
        .sum();
    let api_requests = functions
        .iter()
        .find(|f| f.function == "api")
        .map_or(0, |f| f.invocations);
    let line = |item: &str, units: f64, usd_per_unit: f64| CostLine {
        item: item.to_owned(),
        per_delivery: per(units),
        usd_per_million: per(units) * usd_per_unit * 1e6,
    };
    let lines = vec![
        line(
            "SQS requests",
            sqs_requests as f64,
            SQS_PER_MILLION_REQUESTS / 1e6,
        ),
        line(
            "KMS requests (data keys)",
            kms_requests as f64,
            KMS_PER_MILLION_REQUESTS / 1e6,
        ),
        line("DynamoDB read units", rru, DYNAMODB_PER_MILLION_RRU / 1e6),
        line("DynamoDB write units", wru, DYNAMODB_PER_MILLION_WRU / 1e6),
        line(
            "Lambda invocations",
            invocations as f64,
            LAMBDA_PER_MILLION_REQUESTS / 1e6,
        ),
        line(
            "Lambda GB-seconds (arm64)",
            gb_s,
            LAMBDA_ARM64_PER_GB_SECOND,
        ),
        line(
            "HTTP API requests (intake)",
            api_requests as f64,
            HTTP_API_PER_MILLION_REQUESTS / 1e6,
        ),
    ];
    CostReport {
        options,
        deliveries,
        per_event,
        destination,
        usd_per_million: lines.iter().map(|l| l.usd_per_million).sum(),
        actions,
        functions,
        lines,
        prices_as_of: PRICES_AS_OF.to_owned(),
    }
}

/// The report as tables for people.
pub fn render(report: &CostReport) -> String {
    let o = &report.options;
    let per = |x: f64| x / report.deliveries.max(1) as f64;
    let mut out = format!(
        "cost: {} webhooks x {} events = {} deliveries on moto ({} webhooks in the App, route cache {}), every AWS request counted\n\n",
        o.webhooks,
        o.events,
        report.deliveries,
        o.webhooks_per_app,
        if o.route_cache { "on" } else { "off" }
    );
    out.push_str(
        "component   service   action                requests  per delivery      RRU      WRU\n",
    );
    for t in &report.actions {
        out.push_str(&format!(
            "{:<11} {:<9} {:<20} {:>9} {:>13.3} {:>8.1} {:>8.1}\n",
            t.component,
            t.service,
            t.action,
            t.requests,
            per(t.requests as f64),
            t.read_units,
            t.write_units
        ));
    }
    out.push_str("\nfunction  invocations  memory MB  billed s  ms per invocation\n");
    for f in &report.functions {
        out.push_str(&format!(
            "{:<9} {:>11} {:>10} {:>9.3} {:>18.2}\n",
            f.function,
            f.invocations,
            f.memory_mb,
            f.billed_s,
            f.billed_s * 1000.0 / f.invocations.max(1) as f64
        ));
    }
    out.push_str("\nitem                          per delivery   $ per million deliveries\n");
    for l in &report.lines {
        out.push_str(&format!(
            "{:<29} {:>13.4} {:>26.4}\n",
            l.item, l.per_delivery, l.usd_per_million
        ));
    }
    out.push_str(&format!(
        "{:<29} {:>13} {:>26.4}\n\n",
        "total", "", report.usd_per_million
    ));
    if let Some(d) = &report.destination {
        out.push_str(&format!(
            "SQS destination, per delivery: {:.4} STS requests (no charge), {:.4} SQS requests to the integrator's queue (${:.4} per million deliveries, billed to the integrator, not in the total)\n\n",
            d.sts_per_delivery, d.sqs_per_delivery, d.integrator_usd_per_million
        ));
    }
    let p = &report.per_event;
    out.push_str(&format!(
        "fan-out per event: {:.2} requests, {:.2} read units, {:.2} ms of ingest\n\nprices: {}\n{DURATION_CAVEAT}\n",
        p.ingest_requests, p.ingest_read_units, p.ingest_ms, report.prices_as_of
    ));
    out
}

/// Creates `n` webhooks in App A1 that no bench event matches (their URNs name another
/// resource type), straight in the store: setup, not priced.
async fn create_others(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    n: usize,
    settings: &Settings,
) -> Result<(), BenchError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    use hookline_core::ports::WebhookStore;
    let store =
        hookline_core::adapters::aws::dynamodb::DynamoWebhookStore::new(dynamo.clone(), table);
    let rules = hookline_core::webhook::WebhookRules {
        namespace: &settings.namespace,
        catalog: hookline_core::event_type::Catalog::builtin(),
        allow_http: true,
        targets: settings.targets,
        ordered: false,
        destinations: None,
    };
    let now = time::OffsetDateTime::now_utc();
    let webhooks = (0..n)
        .map(|i| {
            let spec = hookline_core::webhook::NewWebhook {
                name: format!("other {i}"),
                url: format!("https://other-{i}.example.com/hook"),
                event_types: vec![super::BENCH_EVENT_TYPE.into()],
                urns: Some(vec![format!("urn:allthings:app:A1:other:X{i}:*")]),
                ..Default::default()
            }
            .validate(&rules, None)
            .map_err(|e| BenchError::Setup(format!("other webhook: {e}")))?;
            let secret = hookline_core::signing::Secret::generate()
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            Ok(hookline_core::webhook::Webhook::new(
                spec, &secret, "bench", now,
            ))
        })
        .collect::<Result<Vec<_>, BenchError>>()?;
    // One at a time: moto's transactions are not safe to run concurrently.
    stream::iter(webhooks.iter().map(|w| store.create(w)))
        .buffered(1)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| BenchError::Setup(format!("creating the App's other webhooks: {e}")))?;
    Ok(())
}

/// The integrator's side of an SQS destination: a queue, a role trusting Hookline with an
/// external id the API issued, and a client that reads the queue straight from moto (the
/// integrator's reads are not Hookline's cost).
struct Destination {
    input: serde_json::Value,
    sqs: aws_sdk_sqs::Client,
    url: String,
    seen: Mutex<std::collections::HashSet<(String, String)>>,
}

impl Destination {
    async fn create(
        moto: &str,
        router: &Api,
        caller: Caller,
        name: &str,
    ) -> Result<Self, BenchError> {
        let setup = |e: String| BenchError::Setup(format!("SQS destination: {e}"));
        let config = sdk_config(moto.to_owned()).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| setup(e.to_string()))?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        let issued = router
            .handle(
                http::Request::builder()
                    .method("POST")
                    .uri("/v1/destinations/external-ids")
                    .header("content-type", "application/json")
                    .body(Bytes::from(serde_json::json!({"appId": "A1"}).to_string()))
                    .map_err(|e| setup(e.to_string()))?,
                caller,
            )
            .await;
        let issued: serde_json::Value =
            serde_json::from_slice(issued.body()).map_err(|e| setup(e.to_string()))?;
        let external_id = issued["externalId"].as_str().unwrap_or_default().to_owned();
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]});
        let role = aws_sdk_iam::Client::new(&config)
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .map_err(|e| setup(e.to_string()))?
            .role()
            .map(|r| r.arn().to_owned())
            .unwrap_or_default();
        Ok(Self {
            input: serde_json::json!({"type": "aws-sqs", "arn": format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
                "roleArn": role, "externalId": external_id}),
            sqs,
            url,
            seen: Mutex::default(),
        })
    }

    /// Reads and deletes what the queue holds; returns how many new deliveries it held (the
    /// checks' test messages and repeats left out).
    async fn drain(&self) -> Result<u64, BenchError> {
        let mut new = 0;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| BenchError::Run(format!("reading the destination: {e}")))?;
            if out.messages().is_empty() {
                return Ok(new);
            }
            for m in out.messages() {
                let attr = |n: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(n))
                        .and_then(|v| v.string_value())
                        .map(str::to_owned)
                };
                if attr("hookline-test").is_none() {
                    let key = (
                        attr("webhook-id").unwrap_or_default(),
                        attr("webhook-signature").unwrap_or_default(),
                    );
                    if self
                        .seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key)
                    {
                        new += 1;
                    }
                }
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| BenchError::Run(format!("reading the destination: {e}")))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dynamodb_units_follow_the_on_demand_rules() {
        let mut sizes = ItemSizes::default();
        let mut units = |action: &str, request: serde_json::Value, response: serde_json::Value| {
            dynamodb_units(&mut sizes, action, &request, &response)
        };
        let small = json!({"PK": {"S": "a"}, "SK": {"S": "x"}});
        let big = json!({"PK": {"S": "b"}, "SK": {"S": "x".repeat(3000)}});
        let t = "T";
        assert_eq!(
            units("PutItem", json!({"TableName": t, "Item": small}), json!({})),
            (0.0, 1.0)
        );
        assert_eq!(
            units("PutItem", json!({"TableName": t, "Item": big}), json!({})),
            (0.0, 3.0)
        );
        // An update or delete is charged by the item it touches.
        assert_eq!(
            units(
                "UpdateItem",
                json!({"TableName": t, "Key": big, "ExpressionAttributeValues": {":d": {"S": "done"}}}),
                json!({})
            ),
            (0.0, 3.0)
        );
        assert_eq!(
            units(
                "UpdateItem",
                json!({"TableName": t, "Key": {"PK": {"S": "new"}}}),
                json!({})
            ),
            (0.0, 1.0)
        );
        assert_eq!(
            units("DeleteItem", json!({"TableName": t, "Key": big}), json!({})),
            (0.0, 3.0)
        );
        assert_eq!(
            units("GetItem", json!({}), json!({"Item": small})),
            (0.5, 0.0)
        );
        assert_eq!(
            units(
                "GetItem",
                json!({"ConsistentRead": true}),
                json!({"Item": small})
            ),
            (1.0, 0.0)
        );
        let tx = json!({"TransactItems": [{"Put": {"TableName": t, "Item": small}}, {"Delete": {"TableName": t, "Key": small}}]});
        assert_eq!(units("TransactWriteItems", tx, json!({})), (0.0, 4.0));
        let batch = json!({"RequestItems": {"T": [{"PutRequest": {"Item": small}}, {"PutRequest": {"Item": big}}]}});
        assert_eq!(units("BatchWriteItem", batch, json!({})), (0.0, 4.0));
        let items: Vec<_> = (0..5).map(|_| big.clone()).collect();
        assert_eq!(
            units("Query", json!({}), json!({"Items": items})),
            (2.0, 0.0)
        );
    }

    #[test]
    fn prices_add_up_per_million() {
        let actions = vec![ActionTally {
            component: "ingest".into(),
            service: "SQS".into(),
            action: "SendMessageBatch".into(),
            requests: 100,
            billed_requests: 100,
            ..ActionTally::default()
        }];
        let report = price(CostOptions::default(), 1000, actions, Vec::new());
        let sqs = &report.lines[0];
        assert!((sqs.per_delivery - 0.1).abs() < 1e-12);
        assert!((sqs.usd_per_million - 0.04).abs() < 1e-12);
        assert!((report.usd_per_million - 0.04).abs() < 1e-12);
    }
}
