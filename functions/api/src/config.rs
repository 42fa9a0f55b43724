//! Settings from the environment, read once at start (`HOOKLINE_*`).

use hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;

use crate::service::Settings;

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it is unusable.
    pub problem: String,
}

/// Reads a boolean variable (`true`/`false`/`1`/`0`), `default` when unset.
pub fn env_flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" | "" => Ok(false),
            _ => Err(ConfigError {
                name,
                value: v,
                problem: "expected true or false".into(),
            }),
        },
    }
}

/// The service settings: `HOOKLINE_URN_NAMESPACE`, `HOOKLINE_ALLOW_HTTP`,
/// `HOOKLINE_ALLOW_PRIVATE_TARGETS`, `HOOKLINE_ONE_URL_PER_EVENT`, `HOOKLINE_SECRET_OVERLAP`
/// (a duration such as `24h`); `local` flips the defaults
/// of the two `ALLOW` settings to true (for `hookline serve`).
pub fn settings_from_env(local: bool) -> Result<Settings, ConfigError> {
    let namespace = match std::env::var("HOOKLINE_URN_NAMESPACE") {
        Err(_) => Namespace::default(),
        Ok(v) => Namespace::new(&v).map_err(|e| ConfigError {
            name: "HOOKLINE_URN_NAMESPACE",
            value: v.clone(),
            problem: e.to_string(),
        })?,
    };
    Ok(Settings {
        namespace,
        allow_http: env_flag("HOOKLINE_ALLOW_HTTP", local)?,
        targets: TargetPolicy {
            allow_private: env_flag("HOOKLINE_ALLOW_PRIVATE_TARGETS", local)?,
        },
        one_url_per_event: env_flag("HOOKLINE_ONE_URL_PER_EVENT", false)?,
        ordered_deliveries: local
            || std::env::var_os("HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL").is_some(),
        secret_overlap: match std::env::var("HOOKLINE_SECRET_OVERLAP") {
            Err(_) => crate::service::DEFAULT_SECRET_OVERLAP,
            Ok(v) => secret_overlap(&v)?,
        },
        ..Settings::default()
    })
}

/// Parses `HOOKLINE_SECRET_OVERLAP`: a duration such as `24h` or `3s`.
pub fn secret_overlap(value: &str) -> Result<time::Duration, ConfigError> {
    let problem = |p: String| ConfigError {
        name: "HOOKLINE_SECRET_OVERLAP",
        value: value.to_owned(),
        problem: p,
    };
    let d = hookline_core::lifecycle::parse_duration("HOOKLINE_SECRET_OVERLAP", value)
        .map_err(|e| problem(e.problem))?;
    time::Duration::try_from(d).map_err(|e| problem(e.to_string()))
}

/// The claim holding permissions (`HOOKLINE_PERMISSIONS_CLAIM`, default `permissions`).
pub fn permissions_claim() -> String {
    std::env::var("HOOKLINE_PERMISSIONS_CLAIM")
        .unwrap_or_else(|_| DEFAULT_PERMISSIONS_CLAIM.to_owned())
}
