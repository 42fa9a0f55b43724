//! `hookline-bench`: Hookline measured against what it is built on (`hookline-bench --help`).
//! Kept out of the shipped `hookline` binary; `hookline bench ...` runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hookline::progress::Progress;
use hookline::say;
use hookline_bench as bench;

/// Hookline's benchmarks: floor vs pipeline, Lambda cold start, AWS cost. BENCHMARKS.md has
/// the figures.
#[derive(Debug, Parser)]
#[command(
    name = "hookline-bench",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Bench>,
    /// Floor vs pipeline (the default).
    #[command(flatten)]
    throughput: ThroughputArgs,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The Lambda binaries' init and first invocation under a Runtime API emulator, beside an
    /// empty function (needs HOOKLINE_TABLE and the queue URLs, or AWS_ENDPOINT_URL to moto).
    ColdStart(ColdStartArgs),
    /// AWS requests per delivery on moto (AWS_ENDPOINT_URL), priced per million deliveries.
    Cost(CostArgs),
    /// A steady load on `hookline serve` at half its measured saturation, 10 webhooks (some
    /// slow, one flaky, one failing), sampled every 10 s: RSS, CPU, queues, p99; a verdict.
    Soak(SoakArgs),
    /// `hookline serve` with nothing to do: its CPU over a quiet window, then single events
    /// after pauses, each timed from its 202 to its arrival.
    Idle(IdleArgs),
    /// The floor's own process (the throughput run starts it): prints its report as JSON.
    #[command(hide = true)]
    Floor(FloorArgs),
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s}: must be at least 1")),
    }
}

#[derive(Debug, Args)]
struct SoakArgs {
    /// How long the offered load runs, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Offered events per second (default: half the saturation measured first).
    #[arg(long)]
    rate: Option<u32>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Seconds of the saturation measurement.
    #[arg(long, default_value_t = 10)]
    probe_secs: u64,
    /// Delivered body size, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct IdleArgs {
    /// Seconds of the quiet window whose CPU is measured.
    #[arg(long, default_value_t = 30)]
    quiet_secs: u64,
    /// Events posted after it, one at a time.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    wakes: usize,
    /// Milliseconds of idleness before each of them.
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    /// Webhooks subscribed to every event (W).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    webhooks: usize,
    /// Events posted as fast as intake takes them (E); the floor sends W x E requests.
    #[arg(long, default_value_t = 20_000, value_parser = at_least_one)]
    events: usize,
    /// Delivered body size, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// The pipeline's delivery consumers (the floor keeps as many x the batch size in flight).
    #[arg(long, default_value_t = hookline::DELIVER_WORKERS, value_parser = at_least_one)]
    deliver_workers: usize,
    /// Offered load, events per second (0: no offered-load run).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Events of the offered-load run.
    #[arg(long, default_value_t = 5000)]
    rate_events: usize,
    /// Concurrent event posters.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    post_concurrency: usize,
    /// Expired events and attempts (as many of each) written to the pipeline's store before
    /// `serve` starts, so its retention sweeper deletes them during the runs.
    #[arg(long, default_value_t = 0)]
    expired_rows: usize,
    /// Past events in the pipeline's event log when `serve` starts, sent by a backfill to one
    /// more webhook while the runs go on (its deliveries are not counted in the runs).
    #[arg(long, default_value_t = 0)]
    backfill_events: usize,
    /// Print the report as JSON (and no progress).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ColdStartArgs {
    /// Launches per function.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    runs: usize,
    /// Where the Lambda binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where the invocation fixtures are.
    #[arg(long, default_value = "infra/events")]
    events_dir: PathBuf,
    /// Print the report as JSON (and no progress).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CostArgs {
    /// Webhooks subscribed to every event (the matching ones).
    #[arg(long, visible_alias = "matching", default_value_t = 10, value_parser = at_least_one)]
    webhooks: usize,
    /// Webhooks the App holds in all, matching or not (default: --webhooks).
    #[arg(long)]
    webhooks_per_app: Option<usize>,
    /// Read the App's routes for every event, as before the route cache (for comparison).
    #[arg(long)]
    no_route_cache: bool,
    /// Events posted.
    #[arg(long, default_value_t = 200, value_parser = at_least_one)]
    events: usize,
    /// Delivered body size, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Deliver to an AWS SQS queue through an assumed role instead of an HTTPS endpoint
    /// (what STS and the integrator's SQS add per delivery).
    #[arg(long)]
    sqs_destination: bool,
    /// Print the report as JSON (and no progress).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FloorArgs {
    /// The receiver's base URL.
    #[arg(long)]
    url: String,
    /// Requests to send.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 40, value_parser = at_least_one)]
    concurrency: usize,
    /// Size of each delivery body, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
}

/// Prints `report` as JSON with `json`, else as `table`.
fn print_report<T: serde::Serialize>(
    json: bool,
    report: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
        );
    } else {
        say!("{}", table(report).trim_end());
    }
    Ok(())
}

/// The `hookline` binary beside this one (the runs start `hookline serve`).
fn hookline_beside() -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let bench_exe =
        std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let hookline = bench_exe.with_file_name(format!("hookline{}", std::env::consts::EXE_SUFFIX));
    if !hookline.exists() {
        return Err(format!(
            "the pipeline run starts `hookline serve`, and {} is not there: build it with `cargo build --release -p hookline`",
            hookline.display()
        ));
    }
    Ok((bench_exe, hookline))
}

async fn soak(args: SoakArgs) -> Result<(), String> {
    let (_, hookline) = hookline_beside()?;
    let options = bench::soak::SoakOptions {
        minutes: args.minutes,
        rate: args.rate,
        sample_every: Duration::from_secs(args.sample_secs.max(1)),
        body_bytes: args.body_bytes,
        probe_secs: args.probe_secs,
    };
    let report = bench::soak::run(&hookline, &options)
        .await
        .map_err(|e| e.to_string())?;
    // The verdict is printed, not an exit code: a short run on a busy machine is noise.
    print_report(args.json, &report, bench::soak::render)
}

async fn idle(args: IdleArgs) -> Result<(), String> {
    let (_, hookline) = hookline_beside()?;
    let options = bench::idle::IdleOptions {
        quiet_secs: args.quiet_secs,
        wakes: args.wakes,
        pause: Duration::from_millis(args.pause_ms),
    };
    let report = bench::idle::run(&hookline, &options)
        .await
        .map_err(|e| e.to_string())?;
    print_report(args.json, &report, bench::idle::render)
}

async fn throughput(args: ThroughputArgs) -> Result<(), String> {
    let (bench_exe, hookline) = hookline_beside()?;
    let options = bench::throughput::ThroughputOptions {
        webhooks: args.webhooks,
        events: args.events,
        body_bytes: args.body_bytes,
        deliver_workers: args.deliver_workers,
        rate: args.rate,
        rate_events: args.rate_events,
        post_concurrency: args.post_concurrency,
        expired_rows: args.expired_rows,
        backfill_events: args.backfill_events,
    };
    let programs = bench::throughput::Programs {
        hookline,
        bench: bench_exe,
    };
    let report = bench::throughput::run(&programs, &options, Progress::new(args.json))
        .await
        .map_err(|e| e.to_string())?;
    print_report(args.json, &report, bench::throughput::render)
}

async fn cold_start(args: ColdStartArgs) -> Result<(), String> {
    let options = bench::coldstart::ColdStartOptions {
        bin_dir: args.bin_dir,
        events_dir: args.events_dir,
        runs: args.runs,
        env: bench::coldstart::lambda_env().await?,
    };
    let spinner = Progress::new(args.json).counter(format!(
        "cold start: {} launches of each function",
        options.runs
    ));
    let results = bench::coldstart::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    spinner.finish_and_clear();
    print_report(args.json, &results, |r| bench::coldstart::render(r))
}

async fn cost(args: CostArgs) -> Result<(), String> {
    let webhooks_per_app = args.webhooks_per_app.unwrap_or(args.webhooks);
    if webhooks_per_app < args.webhooks {
        return Err(format!(
            "--webhooks-per-app {webhooks_per_app} is fewer than the {} matching webhooks",
            args.webhooks
        ));
    }
    let options = bench::cost::CostOptions {
        webhooks: args.webhooks,
        webhooks_per_app,
        events: args.events,
        body_bytes: args.body_bytes,
        route_cache: !args.no_route_cache,
        sqs_destination: args.sqs_destination,
    };
    let spinner = Progress::new(args.json).counter(format!(
        "cost: {} events x {} webhooks through the handlers on moto",
        options.events, options.webhooks
    ));
    let report = bench::cost::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    spinner.finish_and_clear();
    print_report(args.json, &report, bench::cost::render)
}

async fn floor(args: FloorArgs) -> Result<(), String> {
    let options = bench::floor::FloorOptions {
        url: args.url,
        count: args.count,
        concurrency: args.concurrency,
        body_bytes: args.body_bytes,
    };
    let report = bench::floor::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    say!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Benchmarks print tables; per-delivery logs would bury them (RUST_LOG still wins).
    hookline::init_logging("warn");
    let result = match cli.command {
        None => throughput(cli.throughput).await,
        Some(Bench::ColdStart(args)) => cold_start(args).await,
        Some(Bench::Cost(args)) => cost(args).await,
        Some(Bench::Floor(args)) => floor(args).await,
        Some(Bench::Soak(args)) => soak(args).await,
        Some(Bench::Idle(args)) => idle(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookline-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
