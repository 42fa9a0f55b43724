//! `hookline`: run Hookline locally.
//!
//! ```text
//! hookline serve [--addr 127.0.0.1:8080] [--db ./hookline.db]
//! hookline token --app A1 [--permission edit-app] [--sub dev] [--ttl-hours 24] [--db ./hookline.db]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hookline::Local;
use hookline_core::auth::{parse_grant, Principal};

const USAGE: &str = "usage:
  hookline serve [--addr 127.0.0.1:8080] [--db ./hookline.db]
  hookline token --app APP_ID [--permission edit-app|publish-events] [--sub SUB] [--ttl-hours N] [--db ./hookline.db]

environment: HOOKLINE_ADDR, HOOKLINE_DB, HOOKLINE_URN_NAMESPACE, HOOKLINE_ALLOW_HTTP (default true here),
HOOKLINE_ALLOW_PRIVATE_TARGETS (default true here), HOOKLINE_ONE_URL_PER_EVENT, HOOKLINE_PERMISSIONS_CLAIM, RUST_LOG";

struct Args {
    command: String,
    flags: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("no command given")?;
    let mut flags = Vec::new();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag}"))?;
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

async fn open(args: &Args) -> Result<Local, String> {
    let settings = hookline_api::config::settings_from_env(true).map_err(|e| e.to_string())?;
    Local::open(
        &db_path(args),
        settings,
        hookline_api::config::permissions_claim(),
    )
    .await
    .map_err(|e| e.to_string())
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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match parse_args() {
        Err(e) => Err(e),
        Ok(args) => match args.command.as_str() {
            "serve" => serve(&args).await,
            "token" => token(&args).await,
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
