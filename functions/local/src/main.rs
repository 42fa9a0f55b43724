//! `hookline`: run Hookline locally (`hookline --help`).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser as _};
use hookline::cli::{
    Cli, Command, DlqArgs, DlqCommand, KeysCommand, ListenArgs, PurgeArgs, RecoverArgs, ServeArgs,
    TokenArgs,
};
use hookline::progress::Progress;
use hookline::{dlq, listen, say, Local};
use hookline_core::auth::{parse_grant, Principal};
use hookline_core::job::JobKind;
use hookline_core::signing::Secret;

/// Commands other than `serve` never create a store: they say where they looked.
/// The store at `db` as a command other than `serve` opens it: it must exist already.
async fn open_existing(db: &Path, permissions_claim: String) -> Result<Local, String> {
    existing_store(db)?;
    Local::open(
        db,
        hookline_api::settings::Settings::default(),
        permissions_claim,
    )
    .await
    .map_err(|e| e.to_string())
}

fn existing_store(db: &Path) -> Result<(), String> {
    if db.exists() {
        return Ok(());
    }
    let shown = std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf());
    Err(format!(
        "no Hookline store at {}: run this where `hookline serve` keeps its store, or pass --db FILE (or HOOKLINE_DB)",
        shown.display()
    ))
}

fn schedule_text(schedule: &[Duration]) -> String {
    schedule
        .iter()
        .map(|d| humantime::format_duration(*d).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let delivery = args.delivery();
    let retries = format!(
        "{} retries after {} (±{:.0}% jitter), delivery timeout {}",
        delivery.policy.schedule.len(),
        schedule_text(&delivery.policy.schedule),
        delivery.policy.jitter * 100.0,
        humantime::format_duration(delivery.timeout)
    );
    // Held until exit: a second `serve` on the same store would consume the same queues, and
    // holding it is what lets this one take back at once what a crashed one held.
    let _lock = hookline::lock_new_store(&args.store.db).map_err(|e| e.to_string())?;
    let (mut local, startup) = Local::open_owned(
        &args.store.db,
        args.settings.settings(),
        args.settings.claim.permissions_claim.clone(),
        delivery,
    )
    .await
    .map_err(|e| e.to_string())?;
    local.deliver_workers = args.deliver_workers;
    local.backlog.set_limits(args.backlog());
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let settings = local.router.service().settings();
    let dev = Principal::from_claims(
        "dev",
        Some(&serde_json::Value::String(
            "edit-app:* publish-events:* read-metrics:*".into(),
        )),
    );
    let token = local.mint_token(&dev, Duration::from_secs(7 * 24 * 3600));
    say!("Hookline listening on http://{bound}");
    say!("  REST:    http://{bound}/v1/webhooks (OpenAPI: /v1/openapi.json)");
    say!("  GraphQL: POST http://{bound}/graphql (or /)");
    // The token rides in the fragment, which the browser never sends: no server or log sees it.
    say!("  console: http://{bound}/console#token={token}");
    say!(
        "  metrics: http://{bound}{} (Prometheus text; bearer token with read-metrics:*)",
        hookline::metrics::PATH
    );
    say!("  store:  {} (SQLite)", args.store.db.display());
    say!("  {}", keys_line(&startup.keys));
    let r = startup.recovered;
    if r.claims + r.messages > 0 {
        say!(
            "  recovered: {} fan-outs and {} messages a previous run left in flight, resumed now",
            r.claims,
            r.messages
        );
    }
    say!("  dev token (sub=dev, edit-app:* publish-events:* read-metrics:*, 7 days; valid with this store only):");
    say!("    export HOOKLINE_TOKEN={token}");
    say!("  deliveries: {retries}, {} workers", args.deliver_workers);
    say!(
        "  intake: up to {} deliveries waiting for a first attempt, then 429 (--max-backlog)",
        args.max_backlog
    );
    say!(
        "  endpoint check on save: 200 within {} s",
        hookline_api::service::VERIFY_TIMEOUT.as_secs()
    );
    if settings.targets.allow_private {
        say!("  private targets ALLOWED (loopback, RFC 1918...): for local development only");
    }
    if settings.allow_http {
        say!("  http:// endpoints ALLOWED: for local development only");
    }
    say!("  Ctrl-C stops it");
    local
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// What `serve` says about the keys sealing credentials.
fn keys_line(keys: &hookline::keys::LoadedKeys) -> String {
    let origin = match &keys.origin {
        hookline::keys::KeyOrigin::Env => hookline::keys::MASTER_KEY_VAR.to_string(),
        hookline::keys::KeyOrigin::File { path, created } => format!(
            "{}{}",
            path.display(),
            if *created {
                " (created now, mode 0600: back it up apart from the store)"
            } else {
                ""
            }
        ),
    };
    let mut line = format!(
        "keys:   secrets and header values sealed with key {} from {origin}",
        keys.keyring.active()
    );
    if keys.usage.resealed > 0 {
        line.push_str(&format!(
            "; {} webhooks sealed under it now",
            keys.usage.resealed
        ));
    }
    if !keys.usage.unreadable.is_empty() {
        line.push_str(&format!(
            "; {} webhooks' credentials do not open (altered store): {}",
            keys.usage.unreadable.len(),
            keys.usage.unreadable.join(", ")
        ));
    }
    line
}

/// `hookline keys status|rotate|retire`: on a stopped store (the lock is taken).
async fn keys_command(command: KeysCommand) -> Result<(), String> {
    use hookline::keys;
    use hookline_core::adapters::sqlite::Database;
    let db_path = match &command {
        KeysCommand::Status(s) | KeysCommand::Rotate(s) => s.db.clone(),
        KeysCommand::Retire { store, .. } => store.db.clone(),
    };
    existing_store(&db_path)?;
    let _lock = hookline::lock_store(&db_path).map_err(|e| e.to_string())?;
    let db = Database::open(&db_path).map_err(|e| e.to_string())?;
    let master_key = std::env::var(keys::MASTER_KEY_VAR).ok();
    let from_env = master_key.is_some();
    match command {
        KeysCommand::Status(_) => {
            let usage = hookline_core::reseal::key_usage(&db)
                .await
                .map_err(|e| e.to_string())?;
            match keys::read_keys(&db_path, master_key.as_deref()).map_err(|e| e.to_string())? {
                Some((held, origin)) => {
                    let from = match origin {
                        keys::KeyOrigin::Env => keys::MASTER_KEY_VAR.to_owned(),
                        keys::KeyOrigin::File { path, .. } => path.display().to_string(),
                    };
                    say!("keys from {from}:");
                    for (i, key) in held.iter().enumerate() {
                        let id = hookline_core::sealed::KeyId::of(key);
                        let n = usage.by_key.get(id.as_str()).copied().unwrap_or(0);
                        let role = if i == 0 { "active " } else { "        " };
                        say!("  {role}{id}  {n} webhooks");
                    }
                }
                None => say!(
                    "no key file ({}): `hookline serve` creates it",
                    keys::key_file(&db_path).display()
                ),
            }
            for (id, n) in &usage.by_key {
                let known = keys::read_keys(&db_path, master_key.as_deref())
                    .ok()
                    .flatten()
                    .is_some_and(|(held, _)| {
                        held.iter()
                            .any(|k| hookline_core::sealed::KeyId::of(k).as_str() == id)
                    });
                if !known {
                    say!("  MISSING {id}  {n} webhooks (sealed with a key not given)");
                }
            }
            say!("{} webhooks in the store", usage.webhooks);
            Ok(())
        }
        KeysCommand::Rotate(_) => {
            if from_env {
                return Err(format!(
                    "the keys come from {}: put a new key first in it (keep the old ones after it) and start `hookline serve`, which reseals everything",
                    keys::MASTER_KEY_VAR
                ));
            }
            let id = keys::add_key(&db_path).map_err(|e| e.to_string())?;
            let loaded = keys::load(&db_path, &db, None)
                .await
                .map_err(|e| e.to_string())?;
            say!(
                "new active key {id}; {} of {} webhooks resealed under it",
                loaded.usage.resealed,
                loaded.usage.webhooks
            );
            say!("retire the old keys with `hookline keys retire <id>` (`hookline keys status` lists them)");
            Ok(())
        }
        KeysCommand::Retire { key_id, .. } => {
            if from_env {
                return Err(format!(
                    "the keys come from {}: remove the key from it",
                    keys::MASTER_KEY_VAR
                ));
            }
            let usage = hookline_core::reseal::key_usage(&db)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(n) = usage.by_key.get(&key_id).filter(|n| **n > 0) {
                return Err(format!(
                    "{n} webhooks are still sealed with {key_id}: `hookline keys rotate` (or a start of `hookline serve`) reseals them under the active key first"
                ));
            }
            keys::remove_key(&db_path, &key_id).map_err(|e| e.to_string())?;
            say!("key {key_id} retired");
            Ok(())
        }
    }
}

async fn token(args: TokenArgs) -> Result<(), String> {
    let mut grants = Vec::new();
    for app in &args.apps {
        for permission in &args.permissions {
            let entry = format!("{}:{app}", permission.as_str());
            grants
                .push(parse_grant(&entry).ok_or_else(|| {
                    format!("--app {app}: an App id has no ':' and is not empty")
                })?);
        }
    }
    let local = open_existing(&args.store.db, args.claim.permissions_claim.clone()).await?;
    let principal = Principal::new(args.sub.clone(), grants);
    say!("{}", local.mint_token(&principal, args.lifetime()));
    if std::io::stderr().is_terminal() {
        eprintln!(
            "(signed with the key of {}: it works with the `hookline serve` of that store only)",
            args.store.db.display()
        );
    }
    Ok(())
}

async fn sqs_urls(kind: &str) -> Result<(aws_sdk_sqs::Client, String, String), String> {
    let var = |name: String| std::env::var(&name).map_err(|_| format!("{name} is not set"));
    let queue = var(format!("HOOKLINE_{kind}_QUEUE_URL"))?;
    let dlq = var(format!("HOOKLINE_{kind}_DLQ_URL"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((aws_sdk_sqs::Client::new(&aws), queue, dlq))
}

/// `hookline recover` and `hookline backfill`: count, start, follow; exits 1 when the job
/// failed.
async fn job_command(kind: JobKind, args: RecoverArgs) -> Result<ExitCode, String> {
    let local = open_existing(
        &args.store.db,
        hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM.into(),
    )
    .await?;
    let webhook = hookline_core::ports::WebhookStore::get(&local.db, &args.webhook)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no webhook {} in this store", args.webhook))?;
    let recovery = hookline::recover::start(
        &local.jobs,
        kind,
        &webhook,
        &args.since,
        args.until.as_deref(),
        args.dry_run,
        args.retention,
    )
    .await?;
    let (things, why, verb) = match kind {
        JobKind::Recover => (
            "deliveries",
            "their last attempt failed for good in the window",
            "redelivered",
        ),
        _ => ("events", "logged in the window, matching", "sent"),
    };
    let Some(job) = recovery.job else {
        let tense = if args.dry_run { "would be" } else { "were" };
        say!(
            "{} {things} of {} {tense} {verb} ({why})",
            recovery.matched,
            webhook.id
        );
        return Ok(ExitCode::SUCCESS);
    };
    say!(
        "job {} started: {} {things} of {} to be {verb}",
        job.id,
        recovery.matched,
        webhook.id
    );
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    follow_job(&local, &job, verb, |ended| {
        format!("{} of {} {verb}", ended.done, ended.total)
    })
    .await
}

/// Follows `job` with a progress bar until it ends, then says how it ended (`summary` plus the
/// error, if any); exits 1 unless it is done.
async fn follow_job(
    local: &Local,
    job: &hookline_core::job::Job,
    verb: &str,
    summary: impl FnOnce(&hookline_core::job::Job) -> String,
) -> Result<ExitCode, String> {
    let bar = Progress::new(false).bar(job.total, verb.to_owned());
    let ended = hookline::recover::follow(&local.jobs, job, &bar).await?;
    bar.finish_and_clear();
    say!(
        "job {} {}: {}{}",
        ended.id,
        ended.state.as_str(),
        summary(&ended),
        ended
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    Ok(if ended.state == hookline_core::job::JobState::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `hookline purge-app`: start (or join) the App's purge and follow it; exits 1 when it
/// failed.
async fn purge_command(args: PurgeArgs) -> Result<ExitCode, String> {
    if !args.yes {
        return Err(format!(
            "this deletes every event, attempt and queued delivery of App {} and the webhooks naming only it, for good: add --yes",
            args.app
        ));
    }
    hookline_core::urn::UrnPattern::whole_app(&hookline_core::urn::Namespace::default(), &args.app)
        .map_err(|e| format!("--app {}: not an App id: {e}", args.app))?;
    let local = open_existing(
        &args.store.db,
        hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM.into(),
    )
    .await?;
    let (job, started) = local
        .jobs
        .purge(&args.app, "hookline-cli")
        .await
        .map_err(|e| e.to_string())?;
    if started {
        say!("job {} started: purging App {}", job.id, args.app);
    } else {
        say!("job {} is purging App {} already", job.id, args.app);
    }
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    follow_job(&local, &job, "deleted", |ended| {
        let p = ended.purge.clone().unwrap_or_default();
        format!(
            "App {}: {} webhooks deleted, {} changed, {} events, {} attempts and {} queued messages deleted",
            args.app,
            p.deleted.len(),
            p.stripped.len(),
            p.events,
            p.attempts,
            p.messages,
        )
    })
    .await
}

async fn dlq_command(args: DlqArgs, replay: bool) -> Result<(), String> {
    let kind = args.queue.env_name();
    let filter = dlq::ReplayFilter {
        webhook: args.webhook.clone(),
        limit: args.limit,
    };
    let progress = Progress::new(false);
    if args.aws {
        let (sqs, queue, dead) = sqs_urls(kind).await?;
        if replay {
            let bar = progress.counter("replaying");
            let n = dlq::replay_sqs(&sqs, &dead, &queue, &filter, &bar)
                .await
                .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            say!("replayed {n} message(s) from {dead} to {queue}");
        } else {
            for m in dlq::list_sqs(&sqs, &dead, filter.limit.unwrap_or(100))
                .await
                .map_err(|e| e.to_string())?
            {
                let reason = m.reason.unwrap_or_else(|| {
                    format!("received {} times", m.receive_count.unwrap_or_default())
                });
                say!("{}  {reason}\n  {}", m.message_id, m.body);
            }
        }
        return Ok(());
    }
    let local = open_existing(
        &args.store.db,
        hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM.into(),
    )
    .await?;
    let (queue, dead) = match args.queue {
        hookline::cli::QueueKind::Events => (&local.queues.events, &local.queues.events_dlq),
        hookline::cli::QueueKind::Deliveries => {
            (&local.queues.deliveries, &local.queues.deliveries_dlq)
        }
    };
    if replay {
        let bar = progress.counter("replaying");
        let n = dlq::replay_embedded(dead, queue, &filter, &bar)
            .await
            .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        say!(
            "replayed {n} message(s) from {} to {} in {}",
            dead.name(),
            queue.name(),
            args.store.db.display()
        );
    } else {
        let messages = dlq::list_embedded(dead, filter.limit.unwrap_or(100))
            .await
            .map_err(|e| e.to_string())?;
        say!(
            "{} message(s) in {} of {}",
            messages.len(),
            dead.name(),
            args.store.db.display()
        );
        for m in messages {
            say!(
                "{}  {}\n  {}",
                m.message_id,
                m.reason.unwrap_or_default(),
                m.body
            );
        }
    }
    Ok(())
}

async fn listen_command(args: ListenArgs) -> Result<(), String> {
    let secret = args
        .secret
        .as_deref()
        .map(|s| Secret::parse(s).map_err(|e| format!("--secret: {e}")))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    say!("hookline listen: receiving webhooks on http://{bound}/");
    say!(
        "  answers HEAD with 200 and POSTs with {}",
        args.status
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", then ")
    );
    say!(
        "  signatures: {}",
        if secret.is_some() {
            "checked with the given secret"
        } else {
            "not checked (pass --secret whsec_...)"
        }
    );
    listen::run(
        listener,
        listen::ListenOptions {
            secret,
            statuses: args.status,
            json: args.json,
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// `hookline bench ...` runs `hookline-bench ...` from beside this binary.
fn bench(args: Vec<String>) -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bench: PathBuf =
        exe.with_file_name(format!("hookline-bench{}", std::env::consts::EXE_SUFFIX));
    if !bench.exists() {
        return Err(format!(
            "the benchmarks are a separate binary, {}, which is not there: build it with `cargo build --release -p hookline-bench`",
            bench.display()
        ));
    }
    let status = std::process::Command::new(&bench)
        .args(args)
        .status()
        .map_err(|e| format!("{}: {e}", bench.display()))?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token(args).await,
        Command::Keys(command) => keys_command(command).await,
        Command::Dlq(DlqCommand::List(args)) => dlq_command(args, false).await,
        Command::Dlq(DlqCommand::Replay(args)) => dlq_command(args, true).await,
        Command::Listen(args) => listen_command(args).await,
        Command::Recover(args) => return job_command(JobKind::Recover, args).await,
        Command::Backfill(args) => return job_command(JobKind::Backfill, args).await,
        Command::PurgeApp(args) => return purge_command(args).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hookline", &mut script);
            say!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        Command::Bench { args } => return bench(args),
    }
    .map(|()| ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Completions { .. });
    hookline::init_logging(if quiet { "warn" } else { "info" });
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookline: {e}");
            ExitCode::FAILURE
        }
    }
}
