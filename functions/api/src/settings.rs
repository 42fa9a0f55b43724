//! What a deployment allows ([`Settings`]), read once at start with the core's one settings
//! reader: the `api` Lambda from its environment, `hookline serve` from its flags (which
//! parse with the same functions).

use hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM;
use hookline_core::config::{parse_duration_text, Env, SettingError};
use hookline_core::destination::DestinationPolicy;
use hookline_core::retention::Retention;
use hookline_core::target::{EgressProxy, TargetPolicy};
use hookline_core::urn::Namespace;

/// How long a rotated-out secret keeps signing unless `HOOKLINE_SECRET_OVERLAP` says otherwise.
pub const DEFAULT_SECRET_OVERLAP: time::Duration = time::Duration::hours(24);

/// What a deployment allows, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// URN namespace (`HOOKLINE_URN_NAMESPACE`).
    pub namespace: Namespace,
    /// Accept `http://` endpoints (`HOOKLINE_ALLOW_HTTP`, local development).
    pub allow_http: bool,
    /// Which targets endpoints may be (`HOOKLINE_ALLOW_PRIVATE_TARGETS`).
    pub targets: TargetPolicy,
    /// At most one URL per (App, event type) (`HOOKLINE_ONE_URL_PER_EVENT`).
    pub one_url_per_event: bool,
    /// Label intake's metrics with the App id (`HOOKLINE_METRICS_APP_LABEL`): one series per
    /// App, so only for deployments with few Apps.
    pub metrics_app_label: bool,
    /// `user-agent` of outbound requests.
    pub user_agent: String,
    /// How long a rotated-out secret keeps signing (`HOOKLINE_SECRET_OVERLAP`).
    pub secret_overlap: time::Duration,
    /// How long events and attempts are kept (`HOOKLINE_RETENTION`): no window reaches
    /// further back.
    pub retention: Retention,
    /// Webhooks may ask for ordered delivery (the embedded queue always serves it; on AWS
    /// when `HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL` names the FIFO queue).
    pub ordered_deliveries: bool,
    /// Where AWS destinations may be (`HOOKLINE_DESTINATION_PARTITIONS`,
    /// `HOOKLINE_DESTINATION_REGIONS`).
    pub destinations: DestinationPolicy,
    /// The AWS principal roles must trust (`HOOKLINE_AWS_PRINCIPAL`, shown in the trust
    /// policy an integrator pastes).
    pub aws_principal: Option<String>,
    /// The HTTP proxy endpoint checks and token requests leave through
    /// (`HOOKLINE_EGRESS_PROXY`).
    pub egress_proxy: Option<EgressProxy>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: Namespace::default(),
            allow_http: false,
            targets: TargetPolicy::PUBLIC_ONLY,
            one_url_per_event: false,
            metrics_app_label: false,
            user_agent: format!("Hookline/{}", env!("CARGO_PKG_VERSION")),
            secret_overlap: DEFAULT_SECRET_OVERLAP,
            ordered_deliveries: true,
            retention: Retention::default(),
            destinations: DestinationPolicy::default(),
            aws_principal: None,
            egress_proxy: None,
        }
    }
}
impl Settings {
    /// The settings from `HOOKLINE_URN_NAMESPACE`, `HOOKLINE_ALLOW_HTTP`,
    /// `HOOKLINE_ALLOW_PRIVATE_TARGETS`, `HOOKLINE_ONE_URL_PER_EVENT`, `HOOKLINE_SECRET_OVERLAP`
    /// (a duration such as `24h`), `HOOKLINE_RETENTION` and
    /// `HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL`; `local` flips the
    /// defaults of the two `ALLOW` settings to true (for `hookline serve`).
    pub fn from_env(env: &Env, local: bool) -> Result<Self, SettingError> {
        Ok(Self {
            namespace: env.namespace()?,
            allow_http: env.flag("HOOKLINE_ALLOW_HTTP", local)?,
            targets: TargetPolicy::from_env(env, local)?,
            one_url_per_event: env.flag("HOOKLINE_ONE_URL_PER_EVENT", false)?,
            metrics_app_label: env.flag("HOOKLINE_METRICS_APP_LABEL", false)?,
            retention: Retention::from_env(env)?,
            destinations: DestinationPolicy::from_env(env)?,
            aws_principal: env
                .get("HOOKLINE_AWS_PRINCIPAL")
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            egress_proxy: EgressProxy::from_env(env)?,
            ordered_deliveries: local || env.is_set("HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL"),
            secret_overlap: env.parsed(
                "HOOKLINE_SECRET_OVERLAP",
                DEFAULT_SECRET_OVERLAP,
                parse_secret_overlap,
            )?,
            ..Self::default()
        })
    }
}

/// Parses `HOOKLINE_SECRET_OVERLAP`: a duration such as `24h` or `3s`.
pub fn parse_secret_overlap(value: &str) -> Result<time::Duration, String> {
    let d = parse_duration_text(value)?;
    time::Duration::try_from(d).map_err(|e| e.to_string())
}

/// The claim holding permissions (`HOOKLINE_PERMISSIONS_CLAIM`, default `permissions`).
pub fn permissions_claim(env: &Env) -> String {
    env.get("HOOKLINE_PERMISSIONS_CLAIM")
        .unwrap_or(DEFAULT_PERMISSIONS_CLAIM)
        .to_owned()
}
