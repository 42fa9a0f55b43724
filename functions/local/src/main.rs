//! `hookline`: run Hookline locally.
//!
//! ```text
//! hookline serve [--addr 127.0.0.1:8080] [--db ./hookline.db]
//! hookline token --app A1 [--permission edit-app] [--sub dev] [--ttl-hours 24] [--db ./hookline.db]
//! hookline dlq list|replay [--queue deliveries|events] [--webhook ID] [--limit N] [--db F | --aws]
//! hookline bench [cold-start | cost] [--json] ...
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hookline::{bench, dlq, Local};
use hookline_core::auth::{parse_grant, Principal};
use hookline_core::webhook::WebhookId;
use hookline_deliver::DeliverSettings;

const USAGE: &str = "usage:
  hookline serve [--addr 127.0.0.1:8080] [--db ./hookline.db]
  hookline token --app APP_ID [--permission edit-app|publish-events] [--sub SUB] [--ttl-hours N] [--db ./hookline.db]
  hookline dlq list [--queue deliveries|events] [--limit N] [--db ./hookline.db | --aws]
  hookline dlq replay [--queue deliveries|events] [--webhook WEBHOOK_ID] [--limit N] [--db ./hookline.db | --aws]
  hookline bench [--webhooks 10] [--events 20000] [--body-bytes 1024] [--deliver-workers 4] [--rate 1000] [--rate-events 5000] [--json]
  hookline bench cold-start [--runs 20] [--bin-dir target/release] [--events-dir infra/events] [--json]
  hookline bench cost [--webhooks 10] [--events 200] [--body-bytes 1024] [--json]

bench compares the pipeline (serve) with the bare HTTP client; cold-start launches the Lambda
binaries against a Runtime API emulator beside an empty function; cost counts the AWS requests
per delivery on moto (AWS_ENDPOINT_URL) and prices them. BENCHMARKS.md has the figures.

--aws acts on SQS (a real account, or moto through AWS_ENDPOINT_URL): the queue URLs come from
HOOKLINE_DELIVERIES_QUEUE_URL and HOOKLINE_DELIVERIES_DLQ_URL (or the EVENTS pair).

environment: HOOKLINE_ADDR, HOOKLINE_DB, HOOKLINE_URN_NAMESPACE, HOOKLINE_ALLOW_HTTP (default true here),
HOOKLINE_ALLOW_PRIVATE_TARGETS (default true here), HOOKLINE_ONE_URL_PER_EVENT, HOOKLINE_PERMISSIONS_CLAIM,
HOOKLINE_RETRY_SCHEDULE_MS (e.g. 100,200,400,800,1600; default 30s,2m,8m,32m,2h), HOOKLINE_DELIVERY_TIMEOUT_MS,
HOOKLINE_DELIVER_WORKERS (default 4), RUST_LOG";

struct Args {
    command: String,
    flags: Vec<(String, String)>,
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["aws", "json"];

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut command = it.next().ok_or("no command given")?;
    if command == "dlq" {
        let sub = it.next().ok_or("dlq needs list or replay")?;
        command = format!("dlq {sub}");
    }
    let mut it = it.peekable();
    if command == "bench" {
        if let Some(sub) = it.next_if(|a| !a.starts_with("--")) {
            command = format!("bench {sub}");
        }
    }
    let mut flags = Vec::new();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag}"))?;
        if SWITCHES.contains(&name) {
            flags.push((name.to_owned(), String::new()));
            continue;
        }
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        flags.push((name.to_owned(), value));
    }
    Ok(Args { command, flags })
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(format!("unknown flag --{n} for {}", self.command)),
            None => Ok(()),
        }
    }
}

fn db_path(args: &Args) -> PathBuf {
    args.get("db")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOOKLINE_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("hookline.db"))
}

fn delivery_settings() -> Result<DeliverSettings, String> {
    let mut settings = DeliverSettings::default();
    if let Ok(list) = std::env::var("HOOKLINE_RETRY_SCHEDULE_MS") {
        let steps = list
            .split(',')
            .map(|s| s.trim().parse::<u64>().map(Duration::from_millis))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                format!("HOOKLINE_RETRY_SCHEDULE_MS={list}: expected milliseconds like 100,200,400")
            })?;
        if steps.is_empty() {
            return Err("HOOKLINE_RETRY_SCHEDULE_MS is empty".into());
        }
        settings.policy.schedule = steps;
    }
    if let Ok(ms) = std::env::var("HOOKLINE_DELIVERY_TIMEOUT_MS") {
        let ms: u64 = ms
            .parse()
            .map_err(|_| format!("HOOKLINE_DELIVERY_TIMEOUT_MS={ms} is not a number"))?;
        settings.timeout = Duration::from_millis(ms);
    }
    Ok(settings)
}

async fn open(args: &Args) -> Result<Local, String> {
    let mut local = open_store(args).await?;
    if let Ok(n) = std::env::var("HOOKLINE_DELIVER_WORKERS") {
        local.deliver_workers = n
            .parse()
            .map_err(|_| format!("HOOKLINE_DELIVER_WORKERS={n} is not a number"))?;
    }
    Ok(local)
}

async fn open_store(args: &Args) -> Result<Local, String> {
    let settings = hookline_api::config::settings_from_env(true).map_err(|e| e.to_string())?;
    Local::open_with(
        &db_path(args),
        settings,
        hookline_api::config::permissions_claim(),
        delivery_settings()?,
    )
    .await
    .map_err(|e| e.to_string())
}

fn queue_flag(args: &Args) -> Result<&'static str, String> {
    match args.get("queue").unwrap_or("deliveries") {
        "deliveries" => Ok("DELIVERIES"),
        "events" => Ok("EVENTS"),
        other => Err(format!("--queue {other}: use deliveries or events")),
    }
}

fn limit_flag(args: &Args) -> Result<Option<usize>, String> {
    args.get("limit")
        .map(|l| {
            l.parse()
                .map_err(|_| format!("--limit {l} is not a number"))
        })
        .transpose()
}

async fn sqs_urls(kind: &str) -> Result<(aws_sdk_sqs::Client, String, String), String> {
    let var = |name: String| std::env::var(&name).map_err(|_| format!("{name} is not set"));
    let queue = var(format!("HOOKLINE_{kind}_QUEUE_URL"))?;
    let dlq = var(format!("HOOKLINE_{kind}_DLQ_URL"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((aws_sdk_sqs::Client::new(&aws), queue, dlq))
}

async fn dlq_command(args: &Args, replay: bool) -> Result<(), String> {
    args.check_known(&["queue", "webhook", "limit", "db", "aws"])?;
    let kind = queue_flag(args)?;
    let filter = dlq::ReplayFilter {
        webhook: args
            .get("webhook")
            .map(|w| {
                WebhookId::parse(w).ok_or_else(|| format!("--webhook {w} is not a webhook id"))
            })
            .transpose()?,
        limit: limit_flag(args)?,
    };
    if args.get("aws").is_some() {
        let (sqs, queue, dead) = sqs_urls(kind).await?;
        if replay {
            let n = dlq::replay_sqs(&sqs, &dead, &queue, &filter)
                .await
                .map_err(|e| e.to_string())?;
            println!("replayed {n} message(s) from {dead} to {queue}");
        } else {
            for m in dlq::list_sqs(&sqs, &dead, filter.limit.unwrap_or(100))
                .await
                .map_err(|e| e.to_string())?
            {
                let reason = m.reason.unwrap_or_else(|| {
                    format!("received {} times", m.receive_count.unwrap_or_default())
                });
                println!("{}  {reason}\n  {}", m.message_id, m.body);
            }
        }
        return Ok(());
    }
    let local = open(args).await?;
    let (queue, dead) = match kind {
        "EVENTS" => (&local.queues.events, &local.queues.events_dlq),
        _ => (&local.queues.deliveries, &local.queues.deliveries_dlq),
    };
    if replay {
        let n = dlq::replay_embedded(dead, queue, &filter)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "replayed {n} message(s) from {} to {}",
            dead.name(),
            queue.name()
        );
    } else {
        let messages = dlq::list_embedded(dead, filter.limit.unwrap_or(100))
            .await
            .map_err(|e| e.to_string())?;
        println!("{} message(s) in {}", messages.len(), dead.name());
        for m in messages {
            println!(
                "{}  {}\n  {}",
                m.message_id,
                m.reason.unwrap_or_default(),
                m.body
            );
        }
    }
    Ok(())
}

async fn serve(args: &Args) -> Result<(), String> {
    args.check_known(&["addr", "db"])?;
    let addr_text = args
        .get("addr")
        .map(str::to_owned)
        .or_else(|| std::env::var("HOOKLINE_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|e| format!("--addr {addr_text}: {e}"))?;
    let local = open(args).await?;
    let listener = hookline::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let settings = local.router.service().settings();
    let dev = Principal::from_claims(
        "dev",
        Some(&serde_json::Value::String(
            "edit-app:* publish-events:*".into(),
        )),
    );
    let token = local.mint_token(&dev, Duration::from_secs(7 * 24 * 3600));
    println!("Hookline listening on http://{bound}");
    println!("  store:  {} (SQLite)", db_path(args).display());
    println!("  dev token (sub=dev, edit-app:* publish-events:*, 7 days):");
    println!("    export HOOKLINE_TOKEN={token}");
    if settings.targets.allow_private {
        println!("  private targets ALLOWED (loopback, RFC 1918...): for local development only");
    }
    if settings.allow_http {
        println!("  http:// endpoints ALLOWED: for local development only");
    }
    println!("  Ctrl-C stops it");
    local
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

async fn token(args: &Args) -> Result<(), String> {
    args.check_known(&["app", "permission", "sub", "ttl-hours", "db"])?;
    let apps = args.all("app");
    if apps.is_empty() {
        return Err("--app is required (use * for every App)".into());
    }
    let permissions = match args.all("permission") {
        p if p.is_empty() => vec!["edit-app"],
        p => p,
    };
    let mut grants = Vec::new();
    for app in &apps {
        for permission in &permissions {
            let entry = format!("{permission}:{app}");
            grants.push(parse_grant(&entry).ok_or_else(|| {
                format!("{entry} is not a permission (edit-app or publish-events on an App id)")
            })?);
        }
    }
    let hours: u64 = args
        .get("ttl-hours")
        .unwrap_or("24")
        .parse()
        .map_err(|_| "--ttl-hours must be a whole number".to_owned())?;
    let local = open(args).await?;
    let principal = Principal::new(args.get("sub").unwrap_or("dev"), grants);
    println!(
        "{}",
        local.mint_token(&principal, Duration::from_secs(hours * 3600))
    );
    Ok(())
}

/// `--name N` as a number, or `default`.
fn number_flag<T: std::str::FromStr>(args: &Args, name: &str, default: T) -> Result<T, String> {
    args.get(name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("--{name} {v} is not a whole number"))
    })
}

fn this_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))
}

/// Prints `report` as JSON with `--json`, else as `table`.
fn print_report<T: serde::Serialize>(
    args: &Args,
    report: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    if args.get("json").is_some() {
        println!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", table(report));
    }
    Ok(())
}

async fn bench_throughput(args: &Args) -> Result<(), String> {
    args.check_known(&[
        "webhooks",
        "events",
        "body-bytes",
        "deliver-workers",
        "rate",
        "rate-events",
        "post-concurrency",
        "json",
    ])?;
    let d = bench::throughput::ThroughputOptions::default();
    let options = bench::throughput::ThroughputOptions {
        webhooks: number_flag(args, "webhooks", d.webhooks)?,
        events: number_flag(args, "events", d.events)?,
        body_bytes: number_flag(args, "body-bytes", d.body_bytes)?,
        deliver_workers: number_flag(args, "deliver-workers", d.deliver_workers)?,
        rate: number_flag(args, "rate", d.rate)?,
        rate_events: number_flag(args, "rate-events", d.rate_events)?,
        post_concurrency: number_flag(args, "post-concurrency", d.post_concurrency)?,
    };
    if options.webhooks == 0 || options.events == 0 {
        return Err("--webhooks and --events must be at least 1".into());
    }
    let report = bench::throughput::run(&this_exe()?, &options)
        .await
        .map_err(|e| e.to_string())?;
    print_report(args, &report, bench::throughput::render)
}

/// What the Lambda binaries get: AWS settings from this environment, and the table and queues
/// from `HOOKLINE_*` if set, else freshly created on moto (`AWS_ENDPOINT_URL`).
async fn lambda_env() -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("HOOKLINE_") || k == "PATH")
        .collect();
    if env.contains_key("HOOKLINE_TABLE") {
        return Ok(env);
    }
    if !env.contains_key("AWS_ENDPOINT_URL") {
        return Err("set HOOKLINE_TABLE and the HOOKLINE_*_URL queue variables, or AWS_ENDPOINT_URL to a moto server (tests/run.sh starts one) to have them created".into());
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let nanos = bench::unique_suffix();
    let names = hookline_infra::ResourceNames::with_prefix(&format!("bench-cold-{nanos}"));
    let r = hookline_infra::bootstrap(
        &aws_sdk_dynamodb::Client::new(&aws),
        &aws_sdk_sqs::Client::new(&aws),
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
    ] {
        env.insert(k.to_owned(), v);
    }
    Ok(env)
}

async fn bench_cold_start(args: &Args) -> Result<(), String> {
    args.check_known(&["bin-dir", "events-dir", "runs", "json"])?;
    let options = bench::coldstart::ColdStartOptions {
        bin_dir: PathBuf::from(args.get("bin-dir").unwrap_or("target/release")),
        events_dir: PathBuf::from(args.get("events-dir").unwrap_or("infra/events")),
        runs: number_flag(args, "runs", 20)?,
        env: lambda_env().await?,
    };
    let results = bench::coldstart::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    print_report(args, &results, |r| bench::coldstart::render(r))
}

async fn bench_cost(args: &Args) -> Result<(), String> {
    args.check_known(&["webhooks", "events", "body-bytes", "json"])?;
    let d = bench::cost::CostOptions::default();
    let options = bench::cost::CostOptions {
        webhooks: number_flag(args, "webhooks", d.webhooks)?,
        events: number_flag(args, "events", d.events)?,
        body_bytes: number_flag(args, "body-bytes", d.body_bytes)?,
    };
    if options.webhooks == 0 || options.events == 0 {
        return Err("--webhooks and --events must be at least 1".into());
    }
    let report = bench::cost::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    print_report(args, &report, bench::cost::render)
}

/// The floor's own process (`hookline bench` starts it): prints its report as JSON.
async fn bench_floor(args: &Args) -> Result<(), String> {
    args.check_known(&["url", "count", "concurrency", "body-bytes"])?;
    let options = bench::floor::FloorOptions {
        url: args.get("url").ok_or("--url is required")?.to_owned(),
        count: number_flag(args, "count", 1000)?,
        concurrency: number_flag(args, "concurrency", 40)?,
        body_bytes: number_flag(args, "body-bytes", 1024)?,
    };
    let report = bench::floor::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // Benchmarks print tables; their per-delivery logs would bury them (RUST_LOG still wins).
    let quiet = std::env::args()
        .nth(1)
        .is_some_and(|c| c.starts_with("bench"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match parse_args() {
        Err(e) => Err(e),
        Ok(args) => match args.command.as_str() {
            "serve" => serve(&args).await,
            "token" => token(&args).await,
            "dlq list" => dlq_command(&args, false).await,
            "dlq replay" => dlq_command(&args, true).await,
            "bench" => bench_throughput(&args).await,
            "bench-floor" => bench_floor(&args).await,
            "bench cold-start" => bench_cold_start(&args).await,
            "bench cost" => bench_cost(&args).await,
            "help" | "--help" | "-h" => {
                println!("{USAGE}");
                Ok(())
            }
            other => Err(format!("unknown command {other}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookline: {e}\n\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
