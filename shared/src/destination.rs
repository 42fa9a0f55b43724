//! AWS destinations: a webhook whose events go to the integrator's SQS queue, SNS topic,
//! EventBridge bus or Kinesis data stream instead of an HTTPS endpoint, through an IAM role the integrator lets
//! Hookline assume (STS `AssumeRole` with an external id Hookline issues: the guard AWS
//! documents against the confused deputy).
//!
//! Pure values: the ARN grammar, the deployment's allowed partitions and regions
//! ([`DestinationPolicy`]), external ids ([`ExternalId`], issued per App under the keyring's
//! MAC key so that nobody can reuse another App's), what is sent ([`DestinationMessage`]) and
//! the trust and permission policies an integrator pastes. The sender is
//! `adapters::aws::destinations`.

use std::fmt;

use serde::Serialize;
use serde_json::json;

use crate::config::{Env, SettingError};
use crate::sealed::Keyring;

/// The kinds of AWS destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AwsService {
    /// An SQS queue (standard or FIFO).
    #[serde(rename = "aws-sqs")]
    Sqs,
    /// An SNS topic (standard or FIFO).
    #[serde(rename = "aws-sns")]
    Sns,
    /// An EventBridge event bus.
    #[serde(rename = "aws-eventbridge")]
    EventBridge,
    /// A Kinesis data stream (the partition key is the ordering group, else the URN).
    #[serde(rename = "aws-kinesis")]
    Kinesis,
}

impl AwsService {
    /// Every kind, in the order the API lists them.
    pub const ALL: [AwsService; 4] = [Self::Sqs, Self::Sns, Self::EventBridge, Self::Kinesis];

    /// Its `type` in the API (`aws-sqs`, `aws-sns`, `aws-eventbridge`, `aws-kinesis`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Sqs => "aws-sqs",
            Self::Sns => "aws-sns",
            Self::EventBridge => "aws-eventbridge",
            Self::Kinesis => "aws-kinesis",
        }
    }

    /// The kind a `type` names.
    pub fn parse(type_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.type_name() == type_name)
    }

    /// The service part of its resources' ARNs.
    fn arn_service(self) -> &'static str {
        match self {
            Self::Sqs => "sqs",
            Self::Sns => "sns",
            Self::EventBridge => "events",
            Self::Kinesis => "kinesis",
        }
    }

    /// The actions a role must allow on its resource: the send, and the read the check on
    /// save makes.
    pub fn actions(self) -> [&'static str; 2] {
        match self {
            Self::Sqs => ["sqs:SendMessage", "sqs:GetQueueAttributes"],
            Self::Sns => ["sns:Publish", "sns:GetTopicAttributes"],
            Self::EventBridge => ["events:PutEvents", "events:DescribeEventBus"],
            Self::Kinesis => ["kinesis:PutRecord", "kinesis:DescribeStreamSummary"],
        }
    }

    /// What its ARNs look like, for error messages.
    fn arn_example(self) -> &'static str {
        match self {
            Self::Sqs => "arn:aws:sqs:<region>:<account>:<queue name>",
            Self::Sns => "arn:aws:sns:<region>:<account>:<topic name>",
            Self::EventBridge => "arn:aws:events:<region>:<account>:event-bus/<bus name>",
            Self::Kinesis => "arn:aws:kinesis:<region>:<account>:stream/<stream name>",
        }
    }
}

impl fmt::Display for AwsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Longest ARN accepted.
pub const MAX_ARN_CHARS: usize = 2048;

/// The grammar [`Arn::parse`] enforces, for the API document.
pub const ARN_PATTERN: &str =
    r"^arn:[a-z0-9-]+:[a-z0-9-]*:[a-z0-9-]*:[0-9]{12}:[A-Za-z0-9_./+=,@:-]{1,1024}$";

/// An Amazon Resource Name, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    text: String,
    partition_end: usize,
    service_end: usize,
    region_end: usize,
    account_end: usize,
}

impl Arn {
    /// Parses `arn:<partition>:<service>:<region>:<account>:<resource>` (a 12-digit account).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_ARN_CHARS {
            return Err(format!("is longer than {MAX_ARN_CHARS} characters"));
        }
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(
                "is not an ARN (arn:<partition>:<service>:<region>:<account>:<resource>)".into(),
            );
        };
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if partition.is_empty() || !lower(partition) || !lower(service) || !lower(region) {
            return Err("is not an ARN: partition, service and region are lowercase letters, digits and '-'".into());
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err("is not an ARN: the account is 12 digits".into());
        }
        if resource.is_empty()
            || resource.len() > 1024
            || !resource
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./+=,@:".contains(&b))
        {
            return Err(
                "is not an ARN: the resource is 1-1024 letters, digits and -_./+=,@:".into(),
            );
        }
        let partition_end = 4 + partition.len();
        let service_end = partition_end + 1 + service.len();
        let region_end = service_end + 1 + region.len();
        let account_end = region_end + 1 + account.len();
        Ok(Self {
            text: text.to_owned(),
            partition_end,
            service_end,
            region_end,
            account_end,
        })
    }

    /// The partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &str {
        &self.text[4..self.partition_end]
    }

    /// The service (`sqs`, `sns`, `events`, `iam`).
    pub fn service(&self) -> &str {
        &self.text[self.partition_end + 1..self.service_end]
    }

    /// The region; empty for global resources (IAM roles).
    pub fn region(&self) -> &str {
        &self.text[self.service_end + 1..self.region_end]
    }

    /// The 12-digit account.
    pub fn account(&self) -> &str {
        &self.text[self.region_end + 1..self.account_end]
    }

    /// What follows the account.
    pub fn resource(&self) -> &str {
        &self.text[self.account_end + 1..]
    }

    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which partitions and regions AWS destinations may be in: `HOOKLINE_DESTINATION_PARTITIONS`
/// (default `aws`) and `HOOKLINE_DESTINATION_REGIONS` (default `*`, any region of those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPolicy {
    partitions: Vec<String>,
    /// `None`: any region.
    regions: Option<Vec<String>>,
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        Self {
            partitions: vec!["aws".to_owned()],
            regions: None,
        }
    }
}

/// Parses a comma-separated list of partitions or regions (`*`: any), as
/// `HOOKLINE_DESTINATION_PARTITIONS` and `HOOKLINE_DESTINATION_REGIONS` are written.
pub fn parse_list(value: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err("must name at least one, comma-separated".into());
    }
    if let Some(bad) = items.iter().find(|s| {
        *s != "*"
            && !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }) {
        return Err(format!("\"{bad}\" is not a partition or region name"));
    }
    Ok(items)
}

impl DestinationPolicy {
    /// The policy of these partitions and regions (`None`: any region).
    pub fn new(partitions: Vec<String>, regions: Option<Vec<String>>) -> Self {
        Self {
            partitions,
            regions,
        }
    }

    /// Reads `HOOKLINE_DESTINATION_PARTITIONS` and `HOOKLINE_DESTINATION_REGIONS`.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let partitions = env.parsed(
            "HOOKLINE_DESTINATION_PARTITIONS",
            vec!["aws".into()],
            parse_list,
        )?;
        let regions = env.parsed("HOOKLINE_DESTINATION_REGIONS", vec!["*".into()], parse_list)?;
        Ok(Self::from_lists(partitions, regions))
    }

    /// The policy of these lists ([`parse_list`]); a `*` among the regions allows any.
    pub fn from_lists(partitions: Vec<String>, regions: Vec<String>) -> Self {
        Self {
            partitions,
            regions: (!regions.iter().any(|r| r == "*")).then_some(regions),
        }
    }

    /// Whether an ARN's partition (and region, when it has one) is allowed.
    pub fn check(&self, arn: &Arn) -> Result<(), String> {
        if !self.partitions.iter().any(|p| p == arn.partition()) {
            return Err(format!(
                "is in partition {}; this deployment delivers to {} only",
                arn.partition(),
                self.partitions.join(", ")
            ));
        }
        if let Some(regions) = &self.regions {
            if !arn.region().is_empty() && !regions.iter().any(|r| r == arn.region()) {
                return Err(format!(
                    "is in region {}; this deployment delivers to {} only",
                    arn.region(),
                    regions.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The external id of a destination's role: issued by Hookline for one App
/// (`hookline-<ULID>-<tag>`, the tag a MAC of the App and the ULID under the deployment's
/// keys), so a webhook can only use an id issued for one of its own Apps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalId(String);

const EXTERNAL_ID_PREFIX: &str = "hookline-";
const EXTERNAL_ID_TAG_BYTES: usize = 12;

fn external_id_data(app_id: &str, ulid: &str) -> Vec<u8> {
    format!("external-id:{app_id}:{ulid}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ExternalId {
    /// A new external id for App `app_id`.
    pub fn issue(keys: &Keyring, app_id: &str) -> Self {
        let ulid = ulid::Ulid::new().to_string();
        let tag = keys.mac(&external_id_data(app_id, &ulid));
        Self(format!(
            "{EXTERNAL_ID_PREFIX}{ulid}-{}",
            hex(&tag[..EXTERNAL_ID_TAG_BYTES])
        ))
    }

    /// Checks the form of an external id as given (not who it was issued to).
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = text
            .strip_prefix(EXTERNAL_ID_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(ulid, tag)| {
                ulid::Ulid::from_string(ulid).is_ok()
                    && tag.len() == 2 * EXTERNAL_ID_TAG_BYTES
                    && tag.bytes().all(|b| b.is_ascii_hexdigit())
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err("is not an external id Hookline issued (hookline-<id>-<tag>): ask for one with POST /v1/destinations/external-ids".into())
        }
    }

    /// Whether it was issued for App `app_id` under one of `keys`.
    pub fn issued_for(&self, keys: &Keyring, app_id: &str) -> bool {
        let Some((ulid, tag)) = self
            .0
            .strip_prefix(EXTERNAL_ID_PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            return false;
        };
        let tag: Option<Vec<u8>> = (0..tag.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(tag.get(i..i + 2)?, 16).ok())
            .collect();
        tag.is_some_and(|tag| keys.verify_mac(&external_id_data(app_id, ulid), &tag))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest EventBridge `source` a webhook may set.
pub const MAX_SOURCE_CHARS: usize = 256;
/// The EventBridge `source` when a webhook sets none.
pub const DEFAULT_SOURCE: &str = "hookline";

/// Where an AWS destination delivers, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsDestination {
    /// The kind.
    pub service: AwsService,
    /// The queue, topic, bus or stream.
    pub arn: Arn,
    /// The role Hookline assumes to send.
    pub role_arn: Arn,
    /// The external id the role's trust policy requires.
    pub external_id: ExternalId,
    /// EventBridge's `source` (default [`DEFAULT_SOURCE`]); `None` for the others.
    pub source: Option<String>,
}

impl AwsDestination {
    /// Checks a destination as given: the ARNs' form and service, the policy's partitions
    /// and regions, the external id's form. Errors name the field (`arn`, `roleArn`, ...).
    pub fn parse(
        service: AwsService,
        arn: &str,
        role_arn: &str,
        external_id: &str,
        source: Option<&str>,
        policy: &DestinationPolicy,
    ) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let arn = match Arn::parse(arn).and_then(|a| {
            let wanted = service.arn_service();
            let resource_ok = match service {
                AwsService::Sqs | AwsService::Sns => !a.resource().contains([':', '/']),
                AwsService::EventBridge => a
                    .resource()
                    .strip_prefix("event-bus/")
                    .is_some_and(|n| !n.is_empty() && !n.contains('/')),
                AwsService::Kinesis => a
                    .resource()
                    .strip_prefix("stream/")
                    .is_some_and(|n| !n.is_empty() && !n.contains('/')),
            };
            if a.service() != wanted || a.region().is_empty() || !resource_ok {
                return Err(format!(
                    "is not the ARN of an {service} destination ({})",
                    service.arn_example()
                ));
            }
            policy.check(&a)?;
            Ok(a)
        }) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(("arn", e));
                None
            }
        };
        let role_arn = match Arn::parse(role_arn).and_then(|a| {
            if a.service() != "iam" || !a.resource().starts_with("role/") {
                return Err(
                    "is not the ARN of an IAM role (arn:aws:iam::<account>:role/<name>)".into(),
                );
            }
            policy.check(&a)?;
            Ok(a)
        }) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(("roleArn", e));
                None
            }
        };
        let external_id = match ExternalId::parse(external_id) {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(("externalId", e));
                None
            }
        };
        let source = match (service, source) {
            (AwsService::EventBridge, Some(s)) => {
                if s.is_empty()
                    || s.chars().count() > MAX_SOURCE_CHARS
                    || s.starts_with("aws.")
                    || !s.chars().all(|c| c.is_ascii_graphic())
                {
                    errors.push((
                        "source",
                        format!("must be 1-{MAX_SOURCE_CHARS} printable ASCII characters, not starting with \"aws.\""),
                    ));
                }
                Some(s.to_owned())
            }
            (AwsService::EventBridge, None) => Some(DEFAULT_SOURCE.to_owned()),
            (_, Some(_)) => {
                errors.push(("source", "is only for aws-eventbridge destinations".into()));
                None
            }
            (_, None) => None,
        };
        match (arn, role_arn, external_id) {
            (Some(arn), Some(role_arn), Some(external_id)) if errors.is_empty() => Ok(Self {
                service,
                arn,
                role_arn,
                external_id,
                source,
            }),
            _ => Err(errors),
        }
    }

    /// Reads back a destination this deployment stored after validating it (no policy check).
    pub fn parse_stored(
        service: &str,
        arn: &str,
        role_arn: &str,
        external_id: &str,
        source: Option<&str>,
    ) -> Result<Self, String> {
        let service =
            AwsService::parse(service).ok_or_else(|| format!("unknown destination {service}"))?;
        Ok(Self {
            service,
            arn: Arn::parse(arn)?,
            role_arn: Arn::parse(role_arn)?,
            external_id: ExternalId(external_id.to_owned()),
            source: source.map(str::to_owned),
        })
    }

    /// The queue or topic is FIFO (its name ends in `.fifo`): messages carry a group id.
    pub fn is_fifo(&self) -> bool {
        matches!(self.service, AwsService::Sqs | AwsService::Sns)
            && self.arn.resource().ends_with(".fifo")
    }

    /// An SQS destination's queue URL.
    pub fn queue_url(&self) -> String {
        let suffix = match self.arn.partition() {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        };
        format!(
            "https://sqs.{}.{suffix}/{}/{}",
            self.arn.region(),
            self.arn.account(),
            self.arn.resource()
        )
    }

    /// The actions the role must allow on the resource: the send, and the read the check on
    /// save makes.
    pub fn actions(&self) -> [&'static str; 2] {
        self.service.actions()
    }

    /// The permission policy to attach to the role.
    pub fn permission_policy(&self) -> serde_json::Value {
        permission_policy(&self.actions(), self.arn.as_str())
    }

    /// What the attempt log and logs show for it: `aws-sqs arn:aws:sqs:...`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.service, self.arn)
    }
}

/// The permission policy allowing `actions` on `resource`.
pub fn permission_policy(actions: &[&str], resource: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": actions,
            "Resource": resource,
        }]
    })
}

/// The trust policy letting `principal` (Hookline's, `HOOKLINE_AWS_PRINCIPAL`) assume the
/// role with `external_id`.
pub fn trust_policy(principal: &str, external_id: &ExternalId) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id.as_str()}},
        }]
    })
}

/// One message to an AWS destination: the event envelope exactly as signed, and the
/// Standard Webhooks headers that go with it as message attributes.
#[derive(Debug, Clone)]
pub struct DestinationMessage {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (and `webhook-backfill`,
    /// `hookline-test` when they apply).
    pub attributes: Vec<(String, String)>,
    /// The envelope.
    pub body: Vec<u8>,
    /// The event type (EventBridge's `detail-type`).
    pub event_type: String,
    /// The event's URN, if any (a Kinesis record's partition key when it has no group).
    pub urn: Option<String>,
    /// The ordering group (a FIFO queue's or topic's `MessageGroupId`, a Kinesis record's
    /// partition key).
    pub group: Option<String>,
    /// The delivery id (a FIFO destination's deduplication id).
    pub dedup_id: String,
}

/// The step of a destination check that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStep {
    /// STS `AssumeRole`: the role does not trust Hookline, or wants another external id.
    AssumeRole,
    /// The read that proves access (`GetQueueAttributes`, `GetTopicAttributes`,
    /// `DescribeEventBus`, `DescribeStreamSummary`): the resource is missing, or the role may
    /// not use it.
    Read,
    /// The test message was not accepted.
    Send,
}

/// Why a destination check failed: the step, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", match step { CheckStep::AssumeRole => "assuming the role was refused", CheckStep::Read => "reading the destination was refused", CheckStep::Send => "sending the test message was refused" })]
pub struct DestinationRefused {
    /// Which step.
    pub step: CheckStep,
    /// AWS's error code and message.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqs(
        arn: &str,
        policy: &DestinationPolicy,
    ) -> Result<AwsDestination, Vec<(&'static str, String)>> {
        let keys = Keyring::generate().expect("keys");
        let id = ExternalId::issue(&keys, "A1");
        AwsDestination::parse(
            AwsService::Sqs,
            arn,
            "arn:aws:iam::123456789012:role/hookline",
            id.as_str(),
            None,
            policy,
        )
    }

    #[test]
    fn arns_split_into_their_parts() {
        let a = Arn::parse("arn:aws:events:eu-west-1:123456789012:event-bus/crm").expect("arn");
        assert_eq!(
            (
                a.partition(),
                a.service(),
                a.region(),
                a.account(),
                a.resource()
            ),
            (
                "aws",
                "events",
                "eu-west-1",
                "123456789012",
                "event-bus/crm"
            )
        );
        let r = Arn::parse("arn:aws:iam::123456789012:role/path/x").expect("role");
        assert_eq!((r.region(), r.resource()), ("", "role/path/x"));
        for bad in [
            "",
            "arn:aws:sqs:us-east-1:12345:q",
            "arn:aws:sqs:us-east-1:123456789012:",
            "urn:aws:sqs:us-east-1:123456789012:q",
            "arn:AWS:sqs:us-east-1:123456789012:q",
            "arn:aws:sqs:us-east-1:123456789012:q q",
        ] {
            assert!(Arn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_must_be_in_an_allowed_partition_and_region() {
        let any = DestinationPolicy::default();
        assert!(sqs("arn:aws:sqs:eu-west-1:123456789012:q", &any).is_ok());
        let e = sqs("arn:aws-cn:sqs:cn-north-1:123456789012:q", &any).expect_err("cn");
        assert_eq!(e[0].0, "arn");
        assert!(e[0].1.contains("partition aws-cn"), "{e:?}");
        let eu = DestinationPolicy::new(vec!["aws".into()], Some(vec!["eu-west-1".into()]));
        assert!(sqs("arn:aws:sqs:eu-west-1:123456789012:q", &eu).is_ok());
        let e = sqs("arn:aws:sqs:us-east-1:123456789012:q", &eu).expect_err("region");
        assert!(e[0].1.contains("region us-east-1"), "{e:?}");
        let e = sqs("arn:aws:sns:eu-west-1:123456789012:t", &any).expect_err("a topic");
        assert!(e[0].1.contains("aws-sqs"), "{e:?}");
    }

    #[test]
    fn the_policy_reads_its_settings() {
        let env = Env::from_pairs([
            ("HOOKLINE_DESTINATION_PARTITIONS", "aws, aws-us-gov"),
            ("HOOKLINE_DESTINATION_REGIONS", "us-gov-west-1"),
        ]);
        let p = DestinationPolicy::from_env(&env).expect("policy");
        assert_eq!(
            p,
            DestinationPolicy::new(
                vec!["aws".into(), "aws-us-gov".into()],
                Some(vec!["us-gov-west-1".into()])
            )
        );
        assert_eq!(
            DestinationPolicy::from_env(&Env::from_pairs::<&str, &str>([])).expect("default"),
            DestinationPolicy::default()
        );
        let bad = Env::from_pairs([("HOOKLINE_DESTINATION_REGIONS", "EU West")]);
        assert!(DestinationPolicy::from_env(&bad).is_err());
    }

    #[test]
    fn an_external_id_checks_only_for_the_app_and_keys_it_was_issued_under() {
        let keys = Keyring::generate().expect("keys");
        let id = ExternalId::issue(&keys, "A1");
        assert!(ExternalId::parse(id.as_str()).is_ok());
        assert!(id.issued_for(&keys, "A1"));
        assert!(!id.issued_for(&keys, "A2"));
        assert!(!id.issued_for(&Keyring::generate().expect("other"), "A1"));
        let forged = format!("{}0", &id.as_str()[..id.as_str().len() - 1]);
        let forged = ExternalId::parse(&forged).expect("same form");
        assert!(!forged.issued_for(&keys, "A1") || forged == id);
        assert!(ExternalId::parse("my-own-id").is_err());
    }

    #[test]
    fn each_type_takes_only_its_own_arns() {
        let keys = Keyring::generate().expect("keys");
        let id = ExternalId::issue(&keys, "A1");
        let parse = |service, arn: &str| {
            AwsDestination::parse(
                service,
                arn,
                "arn:aws:iam::123456789012:role/hookline",
                id.as_str(),
                None,
                &DestinationPolicy::default(),
            )
        };
        let stream = parse(
            AwsService::Kinesis,
            "arn:aws:kinesis:eu-west-1:123456789012:stream/crm-events",
        )
        .expect("a stream");
        assert!(!stream.is_fifo());
        assert_eq!(
            stream.permission_policy()["Statement"][0]["Action"],
            json!(["kinesis:PutRecord", "kinesis:DescribeStreamSummary"])
        );
        for (service, arn) in [
            (
                AwsService::Kinesis,
                "arn:aws:kinesis:eu-west-1:123456789012:crm-events",
            ),
            (
                AwsService::Kinesis,
                "arn:aws:kinesis:eu-west-1:123456789012:stream/",
            ),
            (
                AwsService::Kinesis,
                "arn:aws:sqs:eu-west-1:123456789012:stream/crm",
            ),
            (
                AwsService::EventBridge,
                "arn:aws:events:eu-west-1:123456789012:rule/r",
            ),
        ] {
            let e = parse(service, arn).expect_err(arn);
            assert_eq!(e[0].0, "arn", "{arn}");
            assert!(e[0].1.contains(service.type_name()), "{e:?}");
        }
        assert_eq!(AwsService::parse("aws-kinesis"), Some(AwsService::Kinesis));
    }

    #[test]
    fn fifo_queues_and_urls() {
        let d = sqs(
            "arn:aws:sqs:eu-west-1:123456789012:orders.fifo",
            &DestinationPolicy::default(),
        )
        .expect("fifo");
        assert!(d.is_fifo());
        assert_eq!(
            d.queue_url(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"
        );
        assert_eq!(
            d.permission_policy()["Statement"][0]["Resource"],
            d.arn.as_str()
        );
    }
}
