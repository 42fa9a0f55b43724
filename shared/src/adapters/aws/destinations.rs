//! Delivery to AWS destinations ([`crate::destination`]): the integrator's role is assumed
//! with STS (its credentials cached per role and external id until five minutes before they
//! expire), and the event is sent with SQS `SendMessage`, SNS `Publish`, EventBridge
//! `PutEvents` or Kinesis `PutRecord` in the destination's region. Nothing is built at start: the SDK
//! configuration is the composition's (or loaded on first use by `hookline serve`), and the
//! STS client and each service client are made when first needed.
//!
//! The service's answer is mapped to an HTTP status ([`DestinationSender::send`]) so retries,
//! the attempt log and the failure run work as they do for endpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tokio::sync::OnceCell;

use crate::destination::{
    AwsDestination, AwsService, CheckStep, DestinationMessage, DestinationRefused,
};
use crate::outbound::{OutboundError, OutboundResponse};
use crate::ports::DestinationSender;

/// The time each call to STS or a destination has, as an endpoint has to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How long assumed-role sessions last (STS's default and minimum is 15 min; one hour
/// means one `AssumeRole` per role per hour).
const SESSION_SECONDS: i32 = 3600;
/// The role session name the integrator sees in CloudTrail.
const SESSION_NAME: &str = "hookline-delivery";
/// Longest SQS/SNS FIFO group id.
const MAX_GROUP_ID_CHARS: usize = 128;
/// Longest Kinesis partition key.
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Where the SDK configuration comes from.
enum ConfigSource {
    /// The composition's, already loaded.
    Given(SdkConfig),
    /// Loaded by [`super::sdk::config`] on first use (`hookline serve`, which needs no AWS
    /// account until a webhook has an AWS destination).
    Lazy(OnceCell<SdkConfig>),
}

/// A role's session: its credentials and the clients made with them, per service and region.
struct Session {
    expires: SystemTime,
    credentials: Credentials,
    clients: Mutex<HashMap<(AwsService, String), Client>>,
}

#[derive(Clone)]
enum Client {
    Sqs(aws_sdk_sqs::Client),
    Sns(aws_sdk_sns::Client),
    Events(aws_sdk_eventbridge::Client),
    Kinesis(aws_sdk_kinesis::Client),
}

type SessionSlot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

/// The [`DestinationSender`] over the AWS SDK.
pub struct AwsDestinations {
    config: ConfigSource,
    sts: OnceCell<aws_sdk_sts::Client>,
    /// One slot per (role, external id): its holder renews while the others wait.
    sessions: Mutex<HashMap<(String, String), SessionSlot>>,
    timeout: Duration,
}

/// Why a send or check could not go on.
enum Failure {
    /// The service answered: status (as HTTP), error code and message.
    Answer(u16, String),
    /// No answer.
    NoAnswer(OutboundError),
}

impl AwsDestinations {
    /// A sender over `config` (the composition's SDK configuration); `timeout` bounds each
    /// call to STS and the destination.
    pub fn new(config: SdkConfig, timeout: Duration) -> Self {
        Self::with_source(ConfigSource::Given(config), timeout)
    }

    /// A sender that loads the SDK configuration when first used.
    pub fn lazy(timeout: Duration) -> Self {
        Self::with_source(ConfigSource::Lazy(OnceCell::new()), timeout)
    }

    fn with_source(config: ConfigSource, timeout: Duration) -> Self {
        Self {
            config,
            sts: OnceCell::new(),
            sessions: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    async fn config(&self) -> &SdkConfig {
        match &self.config {
            ConfigSource::Given(c) => c,
            ConfigSource::Lazy(cell) => cell.get_or_init(super::sdk::config).await,
        }
    }

    async fn sts(&self) -> &aws_sdk_sts::Client {
        self.sts
            .get_or_init(|| async {
                let conf = aws_sdk_sts::config::Builder::from(self.config().await)
                    .timeout_config(self.timeouts(self.timeout))
                    .build();
                aws_sdk_sts::Client::from_conf(conf)
            })
            .await
    }

    fn timeouts(&self, timeout: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
    }

    /// The role's session, assumed again when it is about to expire.
    async fn session(&self, d: &AwsDestination) -> Result<Arc<Session>, Failure> {
        let key = (d.role_arn.to_string(), d.external_id.to_string());
        let slot = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some(s) = held.as_ref() {
            if s.expires > SystemTime::now() + RENEW_BEFORE {
                return Ok(s.clone());
            }
        }
        let started = Instant::now();
        let out = self
            .sts()
            .await
            .assume_role()
            .role_arn(d.role_arn.as_str())
            .external_id(d.external_id.as_str())
            .role_session_name(SESSION_NAME)
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| failure(e, self.timeout))?;
        let Some(c) = out.credentials() else {
            return Err(Failure::Answer(
                502,
                "AssumeRole answered without credentials".into(),
            ));
        };
        let expires = SystemTime::try_from(*c.expiration())
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(900));
        tracing::info!(role = %d.role_arn, ms = started.elapsed().as_millis() as u64, "assumed the destination's role");
        let session = Arc::new(Session {
            expires,
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                Some(expires),
                "hookline-assume-role",
            ),
            clients: Mutex::new(HashMap::new()),
        });
        *held = Some(session.clone());
        Ok(session)
    }

    /// Drops a role's session (its credentials were refused as expired or invalid).
    fn forget(&self, d: &AwsDestination) {
        let key = (d.role_arn.to_string(), d.external_id.to_string());
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    async fn client(&self, d: &AwsDestination, session: &Session) -> Client {
        let key = (d.service, d.arn.region().to_owned());
        if let Some(c) = session
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return c.clone();
        }
        let config = self.config().await;
        let region = Region::new(d.arn.region().to_owned());
        // The queue retries, on the webhook's schedule: the SDK does not.
        let retry = RetryConfig::disabled();
        let timeouts = self.timeouts(self.timeout);
        let creds = session.credentials.clone();
        // Each service's client over the same region, credentials, retries and timeouts.
        macro_rules! client {
            ($variant:ident, $sdk:ident) => {
                Client::$variant($sdk::Client::from_conf(
                    $sdk::config::Builder::from(config)
                        .region(region)
                        .credentials_provider(creds)
                        .retry_config(retry)
                        .timeout_config(timeouts)
                        .build(),
                ))
            };
        }
        let client = match d.service {
            AwsService::Sqs => client!(Sqs, aws_sdk_sqs),
            AwsService::Sns => client!(Sns, aws_sdk_sns),
            AwsService::EventBridge => client!(Events, aws_sdk_eventbridge),
            AwsService::Kinesis => client!(Kinesis, aws_sdk_kinesis),
        };
        session
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, client.clone());
        client
    }

    /// The read that proves the role may use the resource.
    async fn read(&self, d: &AwsDestination, client: &Client) -> Result<(), Failure> {
        let t = self.timeout;
        match client {
            Client::Sqs(c) => c
                .get_queue_attributes()
                .queue_url(d.queue_url())
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map(drop)
                .map_err(|e| failure(e, t)),
            Client::Sns(c) => c
                .get_topic_attributes()
                .topic_arn(d.arn.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| failure(e, t)),
            Client::Events(c) => c
                .describe_event_bus()
                .name(d.arn.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| failure(e, t)),
            Client::Kinesis(c) => c
                .describe_stream_summary()
                .stream_arn(d.arn.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| failure(e, t)),
        }
    }

    /// Sends the message; `Ok` carries what identifies it at the destination.
    async fn put(
        &self,
        d: &AwsDestination,
        client: &Client,
        m: &DestinationMessage,
    ) -> Result<String, Failure> {
        let t = self.timeout;
        let body = String::from_utf8_lossy(&m.body).into_owned();
        match client {
            Client::Sqs(c) => {
                let mut req = c.send_message().queue_url(d.queue_url()).message_body(body);
                for (name, value) in &m.attributes {
                    let v = aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| Failure::NoAnswer(OutboundError::Other(e.to_string())))?;
                    req = req.message_attributes(name, v);
                }
                if d.is_fifo() {
                    req = req
                        .message_group_id(group_id(m))
                        .message_deduplication_id(&m.dedup_id);
                }
                let out = req.send().await.map_err(|e| failure(e, t))?;
                Ok(format!(
                    "SQS message {}",
                    out.message_id().unwrap_or_default()
                ))
            }
            Client::Sns(c) => {
                let mut req = c.publish().topic_arn(d.arn.as_str()).message(body);
                for (name, value) in &m.attributes {
                    let v = aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| Failure::NoAnswer(OutboundError::Other(e.to_string())))?;
                    req = req.message_attributes(name, v);
                }
                if d.is_fifo() {
                    req = req
                        .message_group_id(group_id(m))
                        .message_deduplication_id(&m.dedup_id);
                }
                let out = req.send().await.map_err(|e| failure(e, t))?;
                Ok(format!(
                    "SNS message {}",
                    out.message_id().unwrap_or_default()
                ))
            }
            Client::Events(c) => {
                let detail = beside(m, body);
                let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(d.arn.as_str())
                    .source(
                        d.source
                            .as_deref()
                            .unwrap_or(crate::destination::DEFAULT_SOURCE),
                    )
                    .detail_type(&m.event_type)
                    .detail(detail.to_string());
                let out = c
                    .put_events()
                    .entries(entry.build())
                    .send()
                    .await
                    .map_err(|e| failure(e, t))?;
                let first = out.entries().first();
                if out.failed_entry_count() > 0 {
                    let code = first.and_then(|e| e.error_code()).unwrap_or("Unknown");
                    let message = first.and_then(|e| e.error_message()).unwrap_or_default();
                    return Err(Failure::Answer(
                        status_of(code, 400),
                        format!("{code}: {message}"),
                    ));
                }
                Ok(format!(
                    "EventBridge event {}",
                    first.and_then(|e| e.event_id()).unwrap_or_default()
                ))
            }
            Client::Kinesis(c) => {
                let data = beside(m, body).to_string();
                let out = c
                    .put_record()
                    .stream_arn(d.arn.as_str())
                    .partition_key(partition_key(m))
                    .data(aws_sdk_kinesis::primitives::Blob::new(data))
                    .send()
                    .await
                    .map_err(|e| failure(e, t))?;
                Ok(format!(
                    "Kinesis record {} in {}",
                    out.sequence_number(),
                    out.shard_id()
                ))
            }
        }
    }
}

/// What a bus or stream carries, having no message attributes: `{"headers", "payload"}`,
/// the payload as the string that was signed (EventBridge re-serialises `detail`).
fn beside(m: &DestinationMessage, body: String) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({ "headers": headers, "payload": body })
}

/// A Kinesis record's partition key: the ordering group (so an ordered webhook's records
/// share a shard), else the event's URN, else the delivery id. Hashed when too long.
fn partition_key(m: &DestinationMessage) -> String {
    let key = m
        .group
        .as_deref()
        .or(m.urn.as_deref())
        .unwrap_or(&m.dedup_id);
    if key.chars().count() <= MAX_PARTITION_KEY_CHARS {
        return key.to_owned();
    }
    sha256_hex(key)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A FIFO message's group: the delivery's ordering group, or (unordered) its own id, so
/// unordered deliveries do not wait on each other. Hashed when longer than SQS allows.
fn group_id(m: &DestinationMessage) -> String {
    let group = m.group.as_deref().unwrap_or(&m.dedup_id);
    if group.len() <= MAX_GROUP_ID_CHARS && group.bytes().all(|b| b.is_ascii_graphic()) {
        return group.to_owned();
    }
    sha256_hex(group)
}

/// The HTTP status an AWS error code stands for (`fallback`: the raw status).
fn status_of(code: &str, fallback: u16) -> u16 {
    const THROTTLED: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "AWS.SimpleQueueService.RequestThrottled",
        "KMSThrottlingException",
        "KMS.ThrottlingException",
    ];
    const DENIED: &[&str] = &[
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "KMSAccessDeniedException",
        "KMS.AccessDeniedException",
        "KMSDisabledException",
        "KMS.DisabledException",
    ];
    const MISSING: &[&str] = &[
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "KMSNotFoundException",
    ];
    const EXPIRED: &[&str] = &[
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    ];
    if THROTTLED.contains(&code) {
        429
    } else if DENIED.contains(&code) {
        403
    } else if MISSING.contains(&code) {
        404
    } else if EXPIRED.contains(&code) {
        // The session is dropped and the next attempt assumes the role again.
        503
    } else if fallback >= 500 || code == "InternalFailure" || code == "ServiceUnavailable" {
        fallback.max(500)
    } else {
        400
    }
}

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E, HttpResponse>,
    timeout: Duration,
) -> Failure {
    match e {
        SdkError::ServiceError(se) => {
            let raw = se.raw().status().as_u16();
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let message = err.message().unwrap_or_default();
            Failure::Answer(status_of(&code, raw), format!("{code}: {message}"))
        }
        SdkError::TimeoutError(_) => Failure::NoAnswer(OutboundError::Timeout(timeout)),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            Failure::NoAnswer(OutboundError::Timeout(timeout))
        }
        SdkError::DispatchFailure(d) => {
            let said = d
                .as_connector_error()
                .map(|c| DisplayErrorContext(c).to_string())
                .unwrap_or_else(|| format!("{d:?}"));
            Failure::NoAnswer(OutboundError::Connect(said))
        }
        other => Failure::NoAnswer(OutboundError::Other(
            DisplayErrorContext(&other).to_string(),
        )),
    }
}

fn refused(step: CheckStep, f: Failure) -> DestinationRefused {
    DestinationRefused {
        step,
        detail: match f {
            Failure::Answer(_, said) => said,
            Failure::NoAnswer(e) => e.to_string(),
        },
    }
}

#[async_trait]
impl DestinationSender for AwsDestinations {
    async fn send(
        &self,
        destination: &AwsDestination,
        message: &DestinationMessage,
    ) -> Result<OutboundResponse, OutboundError> {
        let started = Instant::now();
        let result = match self.session(destination).await {
            Err(Failure::Answer(status, said)) => Err(Failure::Answer(
                status,
                format!("AssumeRole {}: {said}", destination.role_arn),
            )),
            Err(f) => Err(f),
            Ok(session) => {
                let client = self.client(destination, &session).await;
                self.put(destination, &client, message).await
            }
        };
        let latency = started.elapsed();
        match result {
            Ok(id) => Ok(OutboundResponse {
                status: 200,
                retry_after: None,
                body: id,
                latency,
            }),
            Err(Failure::Answer(status, body)) => {
                if status == 503 {
                    self.forget(destination);
                }
                Ok(OutboundResponse {
                    status,
                    retry_after: None,
                    body,
                    latency,
                })
            }
            Err(Failure::NoAnswer(e)) => Err(e),
        }
    }

    async fn check(
        &self,
        destination: &AwsDestination,
        test: &DestinationMessage,
    ) -> Result<(), DestinationRefused> {
        // A check assumes the role afresh: a trust policy changed since a cached session
        // must be noticed on save.
        self.forget(destination);
        let session = self
            .session(destination)
            .await
            .map_err(|f| refused(CheckStep::AssumeRole, f))?;
        let client = self.client(destination, &session).await;
        self.read(destination, &client)
            .await
            .map_err(|f| refused(CheckStep::Read, f))?;
        self.put(destination, &client, test)
            .await
            .map(drop)
            .map_err(|f| refused(CheckStep::Send, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_error_codes_map_to_the_statuses_the_retry_policy_knows() {
        assert_eq!(status_of("ThrottlingException", 400), 429);
        assert_eq!(
            status_of("ProvisionedThroughputExceededException", 400),
            429
        );
        assert_eq!(
            status_of("AWS.SimpleQueueService.NonExistentQueue", 400),
            404
        );
        assert_eq!(status_of("QueueDoesNotExist", 400), 404);
        assert_eq!(status_of("AuthorizationError", 403), 403);
        assert_eq!(status_of("AccessDenied", 403), 403);
        assert_eq!(status_of("InternalError", 500), 500);
        assert_eq!(status_of("InternalFailure", 400), 500);
        assert_eq!(status_of("ExpiredToken", 400), 503);
        assert_eq!(status_of("InvalidParameterValue", 400), 400);
    }

    #[test]
    fn fifo_group_ids_fit_what_sqs_takes() {
        let m = |group: Option<&str>| DestinationMessage {
            attributes: vec![],
            body: vec![],
            event_type: "ticket.created".into(),
            urn: None,
            group: group.map(str::to_owned),
            dedup_id: "dlv_1".into(),
        };
        assert_eq!(group_id(&m(Some("wh_1"))), "wh_1");
        assert_eq!(group_id(&m(None)), "dlv_1");
        let long = "u".repeat(300);
        assert_eq!(group_id(&m(Some(&long))).len(), 64);
    }

    #[test]
    fn kinesis_partition_keys_are_the_group_else_the_urn() {
        let m = |group: Option<&str>, urn: Option<&str>| DestinationMessage {
            attributes: vec![],
            body: vec![],
            event_type: "ticket.created".into(),
            urn: urn.map(str::to_owned),
            group: group.map(str::to_owned),
            dedup_id: "dlv_1".into(),
        };
        let urn = "urn:allthings:app:A1:ticket:CAT7:T99";
        assert_eq!(partition_key(&m(Some("wh_1"), Some(urn))), "wh_1");
        assert_eq!(partition_key(&m(None, Some(urn))), urn);
        assert_eq!(partition_key(&m(None, None)), "dlv_1");
        let long = format!("urn:allthings:app:A1:{}", "ü".repeat(300));
        assert_eq!(partition_key(&m(None, Some(&long))).len(), 64);
    }
}
