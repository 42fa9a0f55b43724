//! The `hookline` command line (clap): every flag with its `HOOKLINE_*` variable, typed
//! values, and the settings `serve` runs with.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use hookline_api::settings::{parse_secret_overlap, Settings};
use hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM;
use hookline_core::config::{parse_duration_text, parse_flag, parse_namespace};
use hookline_core::destination::{parse_list, DestinationPolicy};
use hookline_core::retention::Retention;
use hookline_core::target::{EgressProxy, TargetPolicy};
use hookline_core::urn::Namespace;
use hookline_core::webhook::{DisablePolicy, WebhookId};
use hookline_deliver::DeliverSettings;

/// Hookline: webhook subscriptions and deliveries, on one machine (an embedded SQLite store).
#[derive(Debug, Parser)]
#[command(name = "hookline", version, propagate_version = true)]
#[command(
    after_help = "Start with `hookline serve`; it prints a development token and the next steps."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once at start and matched at once: the size of `serve`'s flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and deliver webhooks on the embedded SQLite store.
    Serve(ServeArgs),
    /// Mint a bearer token for this store (tokens work only with the store that minted them).
    Token(TokenArgs),
    /// Inspect and replay a dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The keys that seal signing secrets and custom header values at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Redeliver a webhook's deliveries whose last attempt failed for good in a window, as a
    /// background job that `hookline serve` runs (a progress bar follows it).
    Recover(RecoverArgs),
    /// Send a webhook the logged events of a window it would have matched (marked
    /// `webhook-backfill: true`), as a background job that `hookline serve` runs.
    Backfill(RecoverArgs),
    /// Delete an App's data (its events, attempts, queued deliveries and webhooks; webhooks
    /// that also name other Apps only lose it), as a background job that `hookline serve`
    /// runs.
    PurgeApp(PurgeArgs),
    /// Receive webhooks on a local port: verify signatures, print each delivery, script
    /// failures to watch retries.
    Listen(ListenArgs),
    /// Print a shell completion script (e.g. `hookline completions bash > /etc/bash_completion.d/hookline`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Benchmarks (runs `hookline-bench` from beside this binary; see `hookline-bench --help`).
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments for `hookline-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The SQLite store.
    #[arg(
        long,
        env = "HOOKLINE_DB",
        default_value = "hookline.db",
        value_name = "FILE"
    )]
    pub db: PathBuf,
}

/// `HOST:PORT`, with a host name or an IP address; checked before anything starts.
pub fn host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080".to_owned())?;
    if host.is_empty() {
        return Err("the host is missing (HOST:PORT)".into());
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port} is not a number from 0 to 65535"))?;
    Ok(s.to_owned())
}

fn webhook_id(s: &str) -> Result<WebhookId, String> {
    WebhookId::parse(s).ok_or_else(|| format!("{s} is not a webhook id (wh_<ULID>)"))
}

fn workers(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{s} is not a number of workers from 1 to 256")),
    }
}

fn backlog(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (8..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s} is not a number of deliveries from 8 to 1000000"
        )),
    }
}

fn millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{s} is not a whole number of milliseconds"))
}

/// `hookline serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, env = "HOOKLINE_ADDR", default_value = "127.0.0.1:8080", value_parser = host_port, value_name = "HOST:PORT")]
    pub addr: String,
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Parallel delivery consumers (Lambda's concurrency); each batch waits for its slowest
    /// endpoint.
    #[arg(long, env = "HOOKLINE_DELIVER_WORKERS", default_value_t = crate::DELIVER_WORKERS, value_parser = workers, value_name = "N")]
    pub deliver_workers: usize,
    /// Intake's backpressure: how many deliveries may wait for their first attempt (and an
    /// eighth as many events for their fan-out). Beyond it, `POST /v1/events` waits up to
    /// a second for room, then answers 429 with `Retry-After`.
    #[arg(long, env = "HOOKLINE_MAX_BACKLOG", default_value_t = crate::backpressure::DEFAULT_MAX_DELIVERY_BACKLOG, value_parser = backlog, value_name = "N")]
    pub max_backlog: usize,
    /// Retry delays in milliseconds, one per retry (default 30s, 2m, 8m, 32m, 2h).
    #[arg(long, env = "HOOKLINE_RETRY_SCHEDULE_MS", value_delimiter = ',', value_parser = millis, value_name = "MS,MS,...")]
    pub retry_schedule_ms: Option<Vec<Duration>>,
    /// Time an endpoint has to answer a delivery, in milliseconds (default 10 000).
    #[arg(long, env = "HOOKLINE_DELIVERY_TIMEOUT_MS", value_parser = millis, value_name = "MS")]
    pub delivery_timeout_ms: Option<Duration>,
    /// How long a webhook's deliveries must keep failing before it is disabled (`5d`, `90m`).
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration_text, value_name = "DURATION")]
    pub disable_after: Duration,
    /// And how many failures that run must hold.
    #[arg(long, env = "HOOKLINE_DISABLE_MIN_FAILURES", default_value_t = hookline_core::webhook::DEFAULT_DISABLE_MIN_FAILURES, value_name = "N")]
    pub disable_min_failures: u32,
    /// The deployment's settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// A comma-separated list of partitions or regions ([`parse_list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

fn names(value: &str) -> Result<Names, String> {
    parse_list(value).map(Names)
}

/// What the API allows (the api Lambda reads the same variables).
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// URN namespace: `urn:<nid>:app:...`.
    #[arg(long, env = "HOOKLINE_URN_NAMESPACE", default_value = "allthings", value_parser = parse_namespace, value_name = "NID")]
    pub urn_namespace: Namespace,
    /// Accept `http://` endpoints (true here for local development; false in a deployment).
    #[arg(long, env = "HOOKLINE_ALLOW_HTTP", default_value = "true", value_parser = parse_flag, action = ArgAction::Set, value_name = "BOOL")]
    pub allow_http: bool,
    /// Allow loopback and private endpoints (true here for local development).
    #[arg(long, env = "HOOKLINE_ALLOW_PRIVATE_TARGETS", default_value = "true", value_parser = parse_flag, action = ArgAction::Set, value_name = "BOOL")]
    pub allow_private_targets: bool,
    /// At most one URL per (App, event type).
    #[arg(long, env = "HOOKLINE_ONE_URL_PER_EVENT", default_value = "false", value_parser = parse_flag, action = ArgAction::Set, value_name = "BOOL")]
    pub one_url_per_event: bool,
    /// Label intake's and fan-out's metrics with the App id (one series per App: few Apps only).
    #[arg(long, env = "HOOKLINE_METRICS_APP_LABEL", default_value = "false", value_parser = parse_flag, action = ArgAction::Set, value_name = "BOOL")]
    pub metrics_app_label: bool,
    /// How long events and attempts are kept (1h to 400d); older windows are refused.
    #[arg(long, env = "HOOKLINE_RETENTION", default_value = "30d", value_parser = Retention::parse, value_name = "DURATION")]
    pub retention: Retention,
    /// How long a rotated-out secret keeps signing beside the new one.
    #[arg(long, env = "HOOKLINE_SECRET_OVERLAP", default_value = "24h", value_parser = parse_secret_overlap, value_name = "DURATION")]
    pub secret_overlap: time::Duration,
    /// AWS partitions destinations may be in (comma-separated).
    #[arg(long, env = "HOOKLINE_DESTINATION_PARTITIONS", default_value = "aws", value_parser = names, value_name = "LIST")]
    pub destination_partitions: Names,
    /// AWS regions destinations may be in (comma-separated; `*`: any).
    #[arg(long, env = "HOOKLINE_DESTINATION_REGIONS", default_value = "*", value_parser = names, value_name = "LIST")]
    pub destination_regions: Names,
    /// The AWS principal destination roles trust (shown in the trust policy to paste).
    #[arg(long, env = "HOOKLINE_AWS_PRINCIPAL", value_name = "ARN")]
    pub aws_principal: Option<String>,
    /// The HTTP proxy deliveries, checks and token requests leave through
    /// (`http://host:port`); the target guard still applies to each target.
    #[arg(long, env = "HOOKLINE_EGRESS_PROXY", value_parser = EgressProxy::parse, value_name = "URL")]
    pub egress_proxy: Option<EgressProxy>,
    /// The token claim holding permissions.
    #[command(flatten)]
    pub claim: ClaimArgs,
}

/// The token claim holding permissions.
#[derive(Debug, Clone, Args)]
pub struct ClaimArgs {
    /// The token claim holding permissions.
    #[arg(long, env = "HOOKLINE_PERMISSIONS_CLAIM", default_value = DEFAULT_PERMISSIONS_CLAIM, value_name = "NAME")]
    pub permissions_claim: String,
}

impl SettingsArgs {
    /// The API's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            namespace: self.urn_namespace.clone(),
            allow_http: self.allow_http,
            targets: TargetPolicy {
                allow_private: self.allow_private_targets,
            },
            one_url_per_event: self.one_url_per_event,
            metrics_app_label: self.metrics_app_label,
            retention: self.retention,
            secret_overlap: self.secret_overlap,
            destinations: DestinationPolicy::from_lists(
                self.destination_partitions.0.clone(),
                self.destination_regions.0.clone(),
            ),
            aws_principal: self.aws_principal.clone(),
            egress_proxy: self.egress_proxy.clone(),
            ..Settings::default()
        }
    }
}

impl ServeArgs {
    /// Intake's backpressure limits.
    pub fn backlog(&self) -> crate::backpressure::BacklogLimits {
        crate::backpressure::BacklogLimits {
            deliveries: self.max_backlog,
            events: (self.max_backlog / 8).max(1),
            ..crate::backpressure::BacklogLimits::default()
        }
    }

    /// The deliverer's settings: retry schedule and timeout.
    pub fn delivery(&self) -> DeliverSettings {
        let mut d = DeliverSettings::default();
        if let Some(schedule) = self.retry_schedule_ms.clone().filter(|s| !s.is_empty()) {
            d.policy.schedule = schedule;
        }
        if let Some(timeout) = self.delivery_timeout_ms {
            d.timeout = timeout;
        }
        d.disable = DisablePolicy {
            after: self.disable_after,
            min_failures: self.disable_min_failures,
        };
        d
    }
}

/// A permission a token may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Permission {
    /// Manage the App's webhooks.
    EditApp,
    /// Publish the App's events.
    PublishEvents,
    /// Report revoked and restored grants (the platform's permission).
    ManageGrants,
    /// Read the metrics at `GET /metrics` (give it with `--app '*'`).
    ReadMetrics,
    /// Purge an App's data, `DELETE /v1/apps/{appId}` (the platform's permission).
    ManageApps,
}

impl Permission {
    /// As in the permissions claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EditApp => "edit-app",
            Self::PublishEvents => "publish-events",
            Self::ManageGrants => "manage-grants",
            Self::ReadMetrics => "read-metrics",
            Self::ManageApps => "manage-apps",
        }
    }
}

/// `hookline token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// An App id, or `*` for every App; repeat for several.
    #[arg(long = "app", required = true, value_name = "APP_ID")]
    pub apps: Vec<String>,
    /// What the token may do on those Apps; repeat for several.
    #[arg(long = "permission", value_enum, default_value = "edit-app")]
    pub permissions: Vec<Permission>,
    /// The token's `sub` (it becomes the owner of the webhooks it creates).
    #[arg(long, default_value = "dev")]
    pub sub: String,
    /// How long the token is valid, in hours.
    #[arg(long, default_value_t = 24, conflicts_with = "ttl", value_name = "N")]
    pub ttl_hours: u64,
    /// How long the token is valid, as a duration (`90m`, `7d`).
    #[arg(long, value_parser = parse_duration_text, value_name = "DURATION")]
    pub ttl: Option<Duration>,
    /// The store whose key signs it.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token claim holding permissions.
    #[command(flatten)]
    pub claim: ClaimArgs,
}

impl TokenArgs {
    /// The token's lifetime.
    pub fn lifetime(&self) -> Duration {
        self.ttl
            .unwrap_or(Duration::from_secs(self.ttl_hours.saturating_mul(3600)))
    }
}

/// Which dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueKind {
    /// Deliveries that exhausted their retries.
    Deliveries,
    /// Events that could not be fanned out.
    Events,
}

impl QueueKind {
    /// The `HOOKLINE_<KIND>_QUEUE_URL` / `_DLQ_URL` variables' middle part.
    pub fn env_name(self) -> &'static str {
        match self {
            Self::Deliveries => "DELIVERIES",
            Self::Events => "EVENTS",
        }
    }
}

/// `hookline keys ...`: the key file beside the store (`<db>.key`), or `HOOKLINE_MASTER_KEY`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keys, and how many webhooks are sealed under each.
    Status(StoreArgs),
    /// Add a new active key to the key file and reseal every webhook under it (stop `hookline
    /// serve` first). The old keys stay until retired.
    Rotate(StoreArgs),
    /// Remove a key from the key file once nothing is sealed under it.
    Retire {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The key's id (`k` and 16 hex digits, as `status` shows it).
        key_id: String,
    },
}

/// `hookline dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// What is in the DLQ, and why.
    List(DlqArgs),
    /// Move messages back to their queue.
    Replay(DlqArgs),
}

/// The DLQ commands' flags.
#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    /// Which queue's DLQ.
    #[arg(long, value_enum, default_value = "deliveries")]
    pub queue: QueueKind,
    /// Only deliveries of this webhook (replay).
    #[arg(long, value_parser = webhook_id, value_name = "WEBHOOK_ID")]
    pub webhook: Option<WebhookId>,
    /// At most this many messages.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Act on SQS (a real account, or moto through AWS_ENDPOINT_URL) instead of the embedded
    /// store: the queue URLs come from HOOKLINE_DELIVERIES_QUEUE_URL and
    /// HOOKLINE_DELIVERIES_DLQ_URL (the EVENTS pair with --queue events).
    #[arg(long, conflicts_with = "db")]
    pub aws: bool,
    /// The embedded store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `hookline recover` and `hookline backfill`.
#[derive(Debug, Clone, Args)]
pub struct RecoverArgs {
    /// The webhook.
    #[arg(long, value_parser = webhook_id, value_name = "WEBHOOK_ID")]
    pub webhook: WebhookId,
    /// The window's start (RFC 3339, e.g. 2026-12-03T10:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: String,
    /// The window's end (RFC 3339; default: now).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only count what would be sent.
    #[arg(long)]
    pub dry_run: bool,
    /// Start the job and return, without following its progress.
    #[arg(long)]
    pub detach: bool,
    /// How long events and attempts are kept (as `hookline serve --retention`): windows
    /// before it are refused.
    #[arg(long, env = "HOOKLINE_RETENTION", default_value = "30d", value_parser = Retention::parse, value_name = "DURATION")]
    pub retention: Retention,
    /// The embedded store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `hookline purge-app`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// The App.
    #[arg(long, value_name = "APP_ID")]
    pub app: String,
    /// Yes, delete the App's data: nothing of it can be brought back.
    #[arg(long)]
    pub yes: bool,
    /// Start the job and return, without following its progress.
    #[arg(long)]
    pub detach: bool,
    /// The embedded store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// HTTP status codes to answer with, in turn; the last one repeats.
fn statuses(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!("{s} is not an HTTP status code (100-599)")),
    }
}

/// `hookline listen`.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Where to listen.
    #[arg(long, env = "HOOKLINE_LISTEN_ADDR", default_value = "127.0.0.1:9000", value_parser = host_port, value_name = "HOST:PORT")]
    pub addr: String,
    /// The webhook's signing secret (`whsec_...`): signatures are checked when given.
    #[arg(
        long,
        env = "HOOKLINE_LISTEN_SECRET",
        value_name = "WHSEC",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// Status codes to answer POSTs with, in turn; the last one repeats (`500,500,200`).
    #[arg(long, value_delimiter = ',', value_parser = statuses, default_value = "200", value_name = "CODE,...")]
    pub status: Vec<u16>,
    /// Print each delivery whole, as one JSON line.
    #[arg(long)]
    pub json: bool,
}
