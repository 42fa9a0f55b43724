//! Helpers for the workspace-level integration tests: the moto connection and unique names.
#![warn(missing_docs)]

use aws_config::BehaviorVersion;

/// The SDK config for the moto server `tests/run.sh` starts. Fails loudly when there is none,
/// and refuses any endpoint that is not loopback (tests never leave the machine).
pub async fn moto_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run ./tests/run.sh, which starts moto on 127.0.0.1 and sets it"
        )
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL={endpoint} is not loopback; tests only talk to a local moto server"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{nanos}-{n}")
}

/// Bootstraps a fresh table and queue set on moto and returns the clients with the names.
pub async fn fresh_aws(
    prefix: &str,
) -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_sqs::Client,
    hookline_infra::Resources,
) {
    let config = moto_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let kms = aws_sdk_kms::Client::new(&config);
    let names = hookline_infra::ResourceNames::with_prefix(&unique_name(prefix));
    let resources = hookline_infra::bootstrap(
        &dynamo,
        &sqs,
        &kms,
        &names,
        &hookline_core::retry::RetryPolicy::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bootstrap on moto failed: {e}"));
    (dynamo, sqs, resources)
}

pub mod receiver;
pub mod stack;

/// The one keyring of the test process: [`webhook`] seals with it, and [`embedded_ports`] and
/// [`aws_ports`] open with it, so webhooks written straight to a store deliver. The KMS vault
/// is tested on its own ([`aws_ports_with_kms`]), and by the Lambda binaries.
pub fn test_keys() -> std::sync::Arc<hookline_core::sealed::Keyring> {
    static KEYS: std::sync::LazyLock<std::sync::Arc<hookline_core::sealed::Keyring>> =
        std::sync::LazyLock::new(|| {
            std::sync::Arc::new(
                hookline_core::sealed::Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
            )
        });
    KEYS.clone()
}

/// A stored-ready webhook (validated, with a fresh secret, sealed with [`test_keys`]) for
/// tests that write to a store directly, without the API's endpoint check.
pub fn webhook(
    urns: &[&str],
    event_types: &[&str],
    enabled: bool,
) -> hookline_core::webhook::Webhook {
    use hookline_core::webhook::{NewWebhook, SigningSecret, Webhook, WebhookId, WebhookRules};
    let namespace = hookline_core::urn::Namespace::default();
    let rules = WebhookRules {
        namespace: &namespace,
        catalog: hookline_core::event_type::Catalog::builtin(),
        allow_http: true,
        targets: hookline_core::target::TargetPolicy {
            allow_private: true,
        },
        ordered: true,
        destinations: None,
    };
    let spec = NewWebhook {
        name: "test".into(),
        url: "https://crm.example.com/hooks".into(),
        event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        urns: Some(urns.iter().map(|u| (*u).to_owned()).collect()),
        custom_headers: None,
        enabled: Some(enabled),
        secret: None,
        ..Default::default()
    }
    .validate(&rules, None)
    .unwrap_or_else(|e| panic!("test webhook is invalid: {e}"));
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let secret = hookline_core::signing::Secret::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut webhook = Webhook {
        id: WebhookId::generate(),
        spec,
        secrets: vec![SigningSecret {
            secret: hookline_core::sealed::Protected::Plain(secret.expose()),
            expires_at: None,
        }],
        owner: "tester".into(),
        version: 1,
        created_at: now,
        updated_at: now,
        state: hookline_core::webhook::WebhookState::default(),
    };
    webhook
        .seal(&test_keys())
        .unwrap_or_else(|e| panic!("sealing: {e}"));
    webhook
}

/// `hook` sealed with `keys` instead of [`test_keys`], and as webhook `id` if given (a sealed
/// value opens only for the webhook it was sealed for): for stores with keys of their own.
pub fn rekey(
    hook: &hookline_core::webhook::Webhook,
    keys: &hookline_core::sealed::Keyring,
    id: Option<hookline_core::webhook::WebhookId>,
) -> hookline_core::webhook::Webhook {
    use hookline_core::sealed::Protected;
    let test = test_keys();
    let now = time::OffsetDateTime::now_utc();
    let mut out = hook.clone();
    let secrets = hook
        .active_secrets(&test, now)
        .unwrap_or_else(|e| panic!("{e}"));
    for (s, plain) in out.secrets.iter_mut().zip(secrets) {
        s.secret = Protected::Plain(plain.expose());
    }
    let headers = hook.open_headers(&test).unwrap_or_else(|e| panic!("{e}"));
    for (h, (_, value)) in out.spec.custom_headers.iter_mut().zip(headers) {
        h.value = Protected::Plain(value);
    }
    if let Some(id) = id {
        out.id = id;
    }
    out.seal(keys).unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Every port on the embedded store `db`, wired as `hookline serve` wires them.
pub fn embedded_ports(
    db: &hookline_core::adapters::sqlite::Database,
) -> hookline_core::ports::Ports {
    use hookline_core::adapters::sqlite::{ports, Queues};
    ports(
        db,
        &Queues::new(db, &hookline_core::retry::RetryPolicy::default()),
        test_keys(),
        hookline_core::urn::Namespace::default(),
    )
}

/// The lifecycle on the embedded store: grants in `db`, operational events onto its `events`
/// queue.
pub fn embedded_lifecycle(
    db: &hookline_core::adapters::sqlite::Database,
) -> hookline_core::lifecycle::Lifecycle {
    hookline_core::lifecycle::Lifecycle::from_ports(&embedded_ports(db))
}

/// Every port on moto's table and queues `r`, wired as the Lambdas wire them, but for the
/// keys: [`test_keys`] (what [`webhook`] seals with).
pub fn aws_ports(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    r: &hookline_infra::Resources,
) -> hookline_core::adapters::aws::AwsPorts {
    // Never called: the vault it would serve is replaced.
    let unused_kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .build(),
    );
    let mut aws = aws_ports_with_kms(dynamo, sqs, &unused_kms, r);
    aws.ports.vault = std::sync::Arc::new(hookline_core::ports::FixedVault(test_keys()));
    aws
}

/// Every port on moto's table and queues `r`, exactly as the Lambdas wire them: data keys
/// from moto's KMS, wrapped in the table.
pub fn aws_ports_with_kms(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    kms: &aws_sdk_kms::Client,
    r: &hookline_infra::Resources,
) -> hookline_core::adapters::aws::AwsPorts {
    hookline_core::adapters::aws::AwsPorts::new(
        dynamo.clone(),
        sqs.clone(),
        kms.clone(),
        r.aws_resources(),
        hookline_core::urn::Namespace::default(),
    )
}

/// The lifecycle on moto, as the Lambdas wire it: grants in the table, operational events onto
/// the events queue.
pub fn aws_lifecycle(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    r: &hookline_infra::Resources,
) -> hookline_core::lifecycle::Lifecycle {
    hookline_core::lifecycle::Lifecycle::from_ports(&aws_ports(dynamo, sqs, r).ports)
}

/// One long-poll (1 s) of up to 10 messages, as the SQS event source would hand them over.
pub async fn sqs_receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<hookline_core::delivery::ReceivedMessage> {
    sqs_receive_up_to(sqs, url, 10).await
}

/// One long-poll (1 s) of up to `max` messages (the event source's batch size).
pub async fn sqs_receive_up_to(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
) -> Vec<hookline_core::delivery::ReceivedMessage> {
    hookline_core::adapters::aws::sqs::SqsQueue::new(sqs.clone(), url)
        .receive(max, 1)
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage on {url}: {e}"))
}

/// A fresh `hookline.db` path in its own temporary directory.
pub fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join("hookline.db")
}

/// `hookline serve` running in-process on a free loopback port.
pub struct Serving {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), hookline::LocalError>>,
}

impl Serving {
    /// Serves `local`'s routes and workers on a free port.
    pub async fn start(local: hookline::Local) -> Self {
        let listener = hookline::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(local.serve(listener, async {
            let _ = stopped.await;
        }));
        Self { base, stop, task }
    }

    /// Stops it as Ctrl-C does and checks the shutdown was clean.
    pub async fn stop(self) {
        assert!(self.stop.send(()).is_ok(), "the server had already stopped");
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("serve failed: {e}"),
            Err(e) => panic!("serve panicked: {e}"),
        }
    }
}

/// Runs an API Gateway HTTP API (payload v2) event through `app` as the `api` Lambda does
/// (`lambda_http` parses it, the router answers, `lambda_http` turns the answer into the
/// Lambda response): its status and body text.
pub async fn invoke_lambda(app: &axum::Router, event: &str) -> (u16, String) {
    use tower::ServiceExt as _;
    let request = lambda_http::request::from_str(event)
        .unwrap_or_else(|e| panic!("not an API Gateway v2 event: {e}"));
    let response = match app.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let response = lambda_http::IntoResponse::into_response(response).await;
    let status = response.status().as_u16();
    let body = match response.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Empty => String::new(),
        lambda_http::Body::Binary(b) => {
            panic!("a binary body ({} bytes) where JSON was due", b.len())
        }
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

/// What `hookline serve` allows by default: `http://` and loopback endpoints.
pub fn local_settings() -> hookline_api::settings::Settings {
    hookline_api::settings::Settings {
        allow_http: true,
        targets: hookline_core::target::TargetPolicy {
            allow_private: true,
        },
        ..hookline_api::settings::Settings::default()
    }
}

/// The API (REST and GraphQL) over an in-memory embedded store, and that store.
pub fn embedded_api(
    settings: hookline_api::settings::Settings,
) -> (hookline_api::Api, hookline_core::adapters::sqlite::Database) {
    use hookline_core::adapters::sqlite::Database;
    let db = Database::open_in_memory().unwrap_or_else(|e| panic!("sqlite: {e}"));
    let http = hookline_core::adapters::http::ReqwestSender::new(settings.targets, "Hookline/test")
        .unwrap_or_else(|e| panic!("client: {e}"));
    let api = hookline_api::Api::from_ports(
        &embedded_ports(&db),
        std::sync::Arc::new(http),
        settings,
        None,
    );
    (api, db)
}

/// Verifies a captured delivery with the `standardwebhooks` reference library (Python, from
/// the test venv `tests/run.sh` installs and names in `HOOKLINE_TEST_PYTHON`): `Ok` or the
/// library's complaint.
pub fn reference_verify(
    python: &str,
    secret: &str,
    delivery: &receiver::Captured,
) -> Result<(), String> {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
req = json.load(sys.stdin)
try:
    Webhook(req["secret"]).verify(req["body"].encode(), req["headers"])
    print("ok")
except Exception as e:
    print("refused: %s" % e)
"#;
    let input = serde_json::json!({
        "secret": secret,
        "body": String::from_utf8_lossy(&delivery.body),
        "headers": delivery.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    let out = run_python(python, SCRIPT, input.to_string().as_bytes());
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if said == "ok" {
        Ok(())
    } else {
        Err(said)
    }
}

/// A `hookline serve` process of the workspace's binary (`target/<profile>/hookline`), started
/// as a user starts it, read up to its "Ctrl-C" line.
pub struct ServeProcess {
    /// The process.
    pub child: std::process::Child,
    /// The dev token it printed.
    pub token: String,
    /// What it printed on start.
    pub said: Vec<String>,
}

impl ServeProcess {
    /// The binary of `profile` (`debug` or `release`); fails loudly when it was not built.
    pub fn binary(profile: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(profile)
            .join("hookline");
        assert!(
            path.exists(),
            "{} is missing: `cargo test --workspace` (./tests/run.sh) builds the debug one; `cargo build [--release] -p hookline` builds it",
            path.display()
        );
        path
    }

    /// Starts `binary serve` on `127.0.0.1:port` over `db`, with `env` set, and waits for
    /// its start lines.
    pub fn start(
        binary: &std::path::Path,
        db: &std::path::Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(binary)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("hookline serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut token = String::new();
        let mut said = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(t) = line.trim().strip_prefix("export HOOKLINE_TOKEN=") {
                token = t.to_owned();
            }
            let done = line.contains("Ctrl-C");
            said.push(line);
            if done {
                break;
            }
        }
        assert!(!token.is_empty(), "serve printed no token: {said:?}");
        Self { child, token, said }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `script` with `python -c`, `input` on its stdin: what it wrote and how it ended.
pub fn run_python(python: &str, script: &str, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python");
    child.wait_with_output().expect("python ran")
}

/// One poll of `queue_url` shaped as the SQS event a Lambda gets; handled messages deleted.
pub async fn play_event_source<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: F,
) -> usize
where
    F: Fn(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    play_event_source_up_to(sqs, queue_url, 10, handler).await
}

/// [`play_event_source`] with batches of at most `max` messages (an event source's
/// `BatchSize`).
pub async fn play_event_source_up_to<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    handler: F,
) -> usize
where
    F: Fn(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let records: Vec<serde_json::Value> = out
        .messages()
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_else(|| "1".into());
            serde_json::json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": {"ApproximateReceiveCount": count}, "messageAttributes": {}, "eventSource": "aws:sqs"})
        })
        .collect();
    let n = records.len();
    if n == 0 {
        return 0;
    }
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("SQS event");
    let failed = handler(event).await;
    for m in out.messages() {
        if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    n
}

/// An integrator's queue `name` on moto (a FIFO queue when the name ends in `.fifo`): its
/// URL and ARN.
pub async fn integrator_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let mut create = sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        create = create.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
    }
    let url = create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create the queue {name}: {e}"))
        .queue_url()
        .expect("url")
        .to_owned();
    (url, format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
}

/// One request to `api` as `caller`: its status and JSON body (`null` when it has none).
pub async fn call_api(
    api: &hookline_api::Api,
    caller: hookline_api::auth::Caller,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let r = api.handle(request, caller).await;
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(r.body()).unwrap_or(serde_json::Value::Null),
    )
}

/// One long-poll (1 s) of up to 10 messages of `url`, each with its string attributes,
/// deleted once read.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("receive from {url}: {e}"));
    let mut got = Vec::new();
    for m in out.messages() {
        let attributes = m
            .message_attributes()
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        got.push((m.body().unwrap_or_default().to_owned(), attributes));
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete from {url}: {e}"));
    }
    got
}
