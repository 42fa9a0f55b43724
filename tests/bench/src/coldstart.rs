//! Cold start: each Lambda binary launched against a small Lambda Runtime API emulator (the
//! `/2018-06-01/runtime/...` routes on loopback), as the Lambda service launches it. Measured
//! per run: spawn → first `GET /invocation/next` (init), and the first invocation, from
//! handing over a fixture event from `infra/events/` to its response. The reference is
//! `empty-lambda`, a `lambda_runtime` function that returns its event.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tokio::sync::oneshot;

use super::stats::{median, ms};
use super::BenchError;

/// A function to measure: its binary, the fixture of its first invocation, its memory size.
#[derive(Debug, Clone)]
pub struct Function {
    /// The row's name: the binary's, or what its first invocation does besides.
    pub name: &'static str,
    /// Binary name under the bin directory.
    pub binary: &'static str,
    /// Fixture file under `infra/events/` (`None`: `{}`).
    pub fixture: Option<&'static str>,
    /// `MemorySize` in template.yaml (the reference gets the smallest of them).
    pub memory_mb: u32,
}

/// The reference, then Hookline's three functions; the api twice, first invoked over REST and
/// over GraphQL (whose schema is built on its first request).
pub const FUNCTIONS: [Function; 5] = [
    Function {
        name: "empty-lambda",
        binary: "empty-lambda",
        fixture: None,
        memory_mb: 256,
    },
    Function {
        name: "api",
        binary: "api",
        fixture: Some("api-list-webhooks.json"),
        memory_mb: super::cost::API_MEMORY_MB,
    },
    Function {
        name: "api graphql",
        binary: "api",
        fixture: Some("api-graphql-webhooks.json"),
        memory_mb: super::cost::API_MEMORY_MB,
    },
    Function {
        name: "ingest",
        binary: "ingest",
        fixture: Some("sqs-ingest-batch.json"),
        memory_mb: super::cost::INGEST_MEMORY_MB,
    },
    Function {
        name: "deliver",
        binary: "deliver",
        fixture: Some("sqs-deliver-batch.json"),
        memory_mb: super::cost::DELIVER_MEMORY_MB,
    },
];

/// How a cold-start run goes.
#[derive(Debug, Clone)]
pub struct ColdStartOptions {
    /// Where the binaries are (`target/release` after `cargo build --release`).
    pub bin_dir: PathBuf,
    /// Where the fixtures are (`infra/events`).
    pub events_dir: PathBuf,
    /// Launches per function.
    pub runs: usize,
    /// Environment every function gets (table, queue URLs, AWS endpoint and credentials).
    pub env: BTreeMap<String, String>,
}

/// One function's medians over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    /// The row: the binary, or what its first invocation does besides (`api graphql`).
    pub function: String,
    /// Binary name.
    pub binary: String,
    /// Binary size, in bytes.
    pub size_bytes: u64,
    /// Launches measured.
    pub runs: usize,
    /// Median spawn → first `/invocation/next`, ms.
    pub init_ms: f64,
    /// Median first invocation (event handed over → response), ms.
    pub first_invocation_ms: f64,
    /// `init_ms` over the reference's.
    pub init_ratio: f64,
    /// `init_ms + first_invocation_ms` over the reference's.
    pub total_ratio: f64,
    /// The first invocation's response, for a look that it did real work.
    pub sample_response: String,
}

/// What the emulator saw of one launch.
#[derive(Debug)]
enum Outcome {
    Responded {
        init: Duration,
        invocation: Duration,
        body: String,
    },
    Failed(String),
}

/// The emulator's state for the launch in progress.
struct Launch {
    spawned: Instant,
    event: Bytes,
    init: Option<Duration>,
    handed_over: Option<Instant>,
    done: Option<oneshot::Sender<Outcome>>,
}

/// A Lambda Runtime API on loopback serving one launch at a time.
struct Emulator {
    addr: SocketAddr,
    launch: Arc<Mutex<Option<Launch>>>,
    server: tokio::task::JoinHandle<()>,
}

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

impl Emulator {
    async fn start() -> std::io::Result<Self> {
        let launch: Arc<Mutex<Option<Launch>>> = Arc::new(Mutex::new(None));
        let shared = launch.clone();
        let (addr, server) = super::serve_loopback(move |req| {
            let launch = shared.clone();
            async move { route(&launch, req).await }
        })
        .await?;
        Ok(Self {
            addr,
            launch,
            server,
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn respond(status: u16, body: Bytes) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
}

fn finish(launch: &Mutex<Option<Launch>>, outcome: impl FnOnce(&Launch) -> Outcome) {
    let mut guard = launch.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = guard.as_mut() {
        let outcome = outcome(l);
        if let Some(done) = l.done.take() {
            let _ = done.send(outcome);
        }
    }
}

async fn route(
    launch: &Mutex<Option<Launch>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == http::Method::GET && path == NEXT {
        let event = {
            let mut guard = launch.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(l) if l.init.is_none() => {
                    let now = Instant::now();
                    l.init = Some(now - l.spawned);
                    l.handed_over = Some(now);
                    Some(l.event.clone())
                }
                _ => None,
            }
        };
        let Some(event) = event else {
            // The function is warm and waits for its next event: there is none; it is killed.
            std::future::pending::<()>().await;
            return respond(500, Bytes::new());
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            + 30_000;
        let mut response = respond(200, event);
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-central-1:123456789012:function:bench".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                    .to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ] {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        return response;
    }
    if method == http::Method::POST && path.ends_with("/response") {
        let text = String::from_utf8_lossy(&body).into_owned();
        finish(launch, |l| match (l.init, l.handed_over) {
            (Some(init), Some(at)) => Outcome::Responded {
                init,
                invocation: at.elapsed(),
                body: text,
            },
            _ => Outcome::Failed("a response before any event".into()),
        });
        return respond(202, Bytes::new());
    }
    if method == http::Method::POST && path.ends_with("/error") {
        let text = String::from_utf8_lossy(&body).into_owned();
        finish(launch, |_| Outcome::Failed(format!("{path}: {text}")));
        return respond(202, Bytes::new());
    }
    respond(404, Bytes::new())
}

/// Launches `binary` once against the emulator and waits for its first response; with
/// `capture`, also returns what it wrote to stdout until then (its logs and metrics).
async fn launch_once(
    emulator: &Emulator,
    binary: &Path,
    event: Bytes,
    memory_mb: u32,
    env: &BTreeMap<String, String>,
    capture: bool,
) -> Result<(Outcome, String), BenchError> {
    let (done, outcome) = oneshot::channel();
    let name = binary
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", emulator.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .kill_on_drop(true);
    *emulator.launch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Launch {
        spawned: Instant::now(),
        event,
        init: None,
        handed_over: None,
        done: Some(done),
    });
    let mut child = command
        .spawn()
        .map_err(|e| BenchError::Setup(format!("{}: {e}", binary.display())))?;
    let result = tokio::select! {
        outcome = outcome => outcome.map_err(|_| BenchError::Run(format!("{name}: the emulator dropped the launch"))),
        status = child.wait() => Err(BenchError::Run(format!("{name} exited before answering: {status:?}"))),
        () = tokio::time::sleep(Duration::from_secs(30)) => Err(BenchError::Run(format!("{name} did not answer within 30 s"))),
    };
    let _ = child.kill().await;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use tokio::io::AsyncReadExt as _;
        let _ = out.read_to_string(&mut stdout).await;
    }
    result.map(|outcome| (outcome, stdout))
}

/// Invokes `binary` once with `event` as Lambda does (a fresh process against the Runtime
/// API emulator, `env` its environment); returns its response and what it wrote to stdout.
pub async fn invoke_once(
    binary: &Path,
    event: Bytes,
    env: &BTreeMap<String, String>,
) -> Result<(String, String), BenchError> {
    let emulator = Emulator::start()
        .await
        .map_err(|e| BenchError::Setup(format!("runtime API emulator: {e}")))?;
    match launch_once(&emulator, binary, event, 256, env, true).await? {
        (Outcome::Responded { body, .. }, stdout) => Ok((body, stdout)),
        (Outcome::Failed(why), stdout) => Err(BenchError::Run(format!(
            "{}: {why}; it wrote: {stdout}",
            binary.display()
        ))),
    }
}

/// What the Lambda binaries get: AWS settings from this environment, and the table and queues
/// from `HOOKLINE_*` if set, else freshly created on moto (`AWS_ENDPOINT_URL`).
pub async fn lambda_env() -> Result<BTreeMap<String, String>, String> {
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("HOOKLINE_") || k == "PATH")
        .collect();
    if env.contains_key("HOOKLINE_TABLE") {
        return Ok(env);
    }
    if !env.contains_key("AWS_ENDPOINT_URL") {
        return Err("set HOOKLINE_TABLE and the HOOKLINE_*_URL queue variables, or AWS_ENDPOINT_URL to a moto server (tests/run.sh starts one) to have them created".into());
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let nanos = super::unique_suffix();
    let names = hookline_infra::ResourceNames::with_prefix(&format!("bench-cold-{nanos}"));
    let r = hookline_infra::bootstrap(
        &aws_sdk_dynamodb::Client::new(&aws),
        &aws_sdk_sqs::Client::new(&aws),
        &aws_sdk_kms::Client::new(&aws),
        &names,
        &hookline_core::retry::RetryPolicy::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    for (k, v) in [
        ("HOOKLINE_TABLE", r.table_name),
        ("HOOKLINE_EVENTS_QUEUE_URL", r.events_queue_url),
        ("HOOKLINE_EVENTS_DLQ_URL", r.events_dlq_url),
        ("HOOKLINE_DELIVERIES_QUEUE_URL", r.deliveries_queue_url),
        ("HOOKLINE_DELIVERIES_DLQ_URL", r.deliveries_dlq_url),
        ("HOOKLINE_KMS_KEY_ID", r.kms_key_id),
    ] {
        env.insert(k.to_owned(), v);
    }
    Ok(env)
}

/// Measures every function of [`FUNCTIONS`] `options.runs` times, interleaved.
pub async fn run(options: &ColdStartOptions) -> Result<Vec<ColdStart>, BenchError> {
    let emulator = Emulator::start()
        .await
        .map_err(|e| BenchError::Setup(format!("runtime API emulator: {e}")))?;
    let mut inputs = Vec::new();
    for f in &FUNCTIONS {
        let binary = options.bin_dir.join(f.binary);
        let size = std::fs::metadata(&binary)
            .map_err(|e| {
                BenchError::Setup(format!(
                    "{}: {e}; build it first: cargo build --release -p hookline-api -p hookline-ingest -p hookline-deliver -p hookline-empty-lambda",
                    binary.display()
                ))
            })?
            .len();
        let event = match f.fixture {
            Some(file) => {
                let path = options.events_dir.join(file);
                Bytes::from(
                    std::fs::read(&path)
                        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?,
                )
            }
            None => Bytes::from_static(b"{}"),
        };
        inputs.push((f, binary, size, event));
    }
    let mut samples: Vec<(Vec<f64>, Vec<f64>, String)> =
        vec![(Vec::new(), Vec::new(), String::new()); inputs.len()];
    // Interleaved, so a noisy moment of the machine spreads over every function alike.
    for _ in 0..options.runs.max(1) {
        for (i, (f, binary, _, event)) in inputs.iter().enumerate() {
            match launch_once(
                &emulator,
                binary,
                event.clone(),
                f.memory_mb,
                &options.env,
                false,
            )
            .await?
            .0
            {
                Outcome::Responded {
                    init,
                    invocation,
                    body,
                } => {
                    samples[i].0.push(ms(init));
                    samples[i].1.push(ms(invocation));
                    samples[i].2 = body;
                }
                Outcome::Failed(why) => {
                    return Err(BenchError::Run(format!("{}: {why}", f.name)));
                }
            }
        }
    }
    let medians: Vec<(f64, f64)> = samples
        .iter()
        .map(|(init, inv, _)| (median(init.clone()), median(inv.clone())))
        .collect();
    let (ref_init, ref_inv) = medians[0];
    Ok(inputs
        .iter()
        .zip(samples)
        .zip(medians)
        .map(|(((f, _, size, _), (_, _, body)), (init, inv))| ColdStart {
            function: f.name.to_owned(),
            binary: f.binary.to_owned(),
            size_bytes: *size,
            runs: options.runs.max(1),
            init_ms: init,
            first_invocation_ms: inv,
            init_ratio: init / ref_init.max(f64::EPSILON),
            total_ratio: (init + inv) / (ref_init + ref_inv).max(f64::EPSILON),
            sample_response: body.chars().take(160).collect(),
        })
        .collect())
}

/// The results as a table for people.
pub fn render(results: &[ColdStart]) -> String {
    let mut out = format!(
        "cold start: {} launches each against a Lambda Runtime API emulator; medians\n\n",
        results.first().map_or(0, |r| r.runs)
    );
    out.push_str(
        "function        size MB   init ms  x empty   first invocation ms  init+first x empty\n",
    );
    for r in results {
        out.push_str(&format!(
            "{:<14} {:>8.2} {:>9.2} {:>8.2} {:>21.2} {:>19.2}\n",
            r.function,
            r.size_bytes as f64 / 1e6,
            r.init_ms,
            r.init_ratio,
            r.first_invocation_ms,
            r.total_ratio
        ));
    }
    out
}
