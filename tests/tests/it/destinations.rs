//! AWS destinations on moto (STS, IAM, SQS, SNS, EventBridge, Kinesis), on both compositions: an
//! external id issued for the App, a role trusting Hookline's principal with it, and one
//! webhook per destination type receiving exactly the matching event with its Standard
//! Webhooks signature in the message attributes. On save, a role that does not trust
//! Hookline, a wrong external id, an id issued for another App and a deleted queue are each
//! refused saying which step failed; a queue deleted after save fails its deliveries (404,
//! final), and so does a role that stopped trusting Hookline (403, once no session is
//! cached). An ordered webhook to a FIFO queue that throttles every other send keeps the order
//! published. moto's AssumeRole checks trust policies, and "-flaky-" queues throttle, through
//! `tests/moto_server.py`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline::Local;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::aws::destinations::AwsDestinations;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::adapters::lambda::received_messages;
use hookline_core::auth::Principal;
use hookline_core::signing::{verify, Secret};
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use hookline_tests::{
    integrator_queue, moto_config, play_event_source, play_event_source_up_to, unique_name, Serving,
};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const PRINCIPAL: &str = "arn:aws:iam::123456789012:root";

fn settings() -> Settings {
    Settings {
        aws_principal: Some(PRINCIPAL.into()),
        ..hookline_tests::local_settings()
    }
}

fn caller() -> Caller {
    Caller::Principal(Principal::from_claims(
        "integrator",
        Some(&Value::String(
            "edit-app:A1 edit-app:A2 publish-events:A1".into(),
        )),
    ))
}

async fn call(api: &Api, method: &str, path: &str, body: Value) -> (u16, Value) {
    hookline_tests::call_api(api, caller(), method, path, body).await
}

/// The integrator's side on moto: a role, a queue, a topic with a raw-delivery queue
/// subscribed, a bus whose rule forwards to a queue, and a one-shard stream.
struct Integrator {
    iam: aws_sdk_iam::Client,
    sqs: aws_sdk_sqs::Client,
    kinesis: aws_sdk_kinesis::Client,
    stream_arn: String,
    queue_url: String,
    queue_arn: String,
    topic_arn: String,
    topic_sink: String,
    bus_arn: String,
    bus_sink: String,
}

fn trust(principal: &str, external_id: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]})
    .to_string()
}

impl Integrator {
    async fn new() -> Self {
        let config = moto_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let (queue_url, queue_arn) = integrator_queue(&sqs, &unique_name("dest-sqs")).await;
        let topic_arn = sns
            .create_topic()
            .name(unique_name("dest-sns"))
            .send()
            .await
            .expect("topic")
            .topic_arn()
            .expect("arn")
            .to_owned();
        let (topic_sink, topic_sink_arn) =
            integrator_queue(&sqs, &unique_name("dest-sns-sink")).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&topic_sink_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribe");
        let bus = unique_name("dest-bus");
        let bus_arn = events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("bus")
            .event_bus_arn()
            .expect("arn")
            .to_owned();
        let (bus_sink, bus_sink_arn) = integrator_queue(&sqs, &unique_name("dest-bus-sink")).await;
        let rule = unique_name("dest-rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(json!({"source": ["crm.hookline"]}).to_string())
            .send()
            .await
            .expect("rule");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("sink")
                    .arn(&bus_sink_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("targets");
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        let stream = unique_name("dest-stream");
        kinesis
            .create_stream()
            .stream_name(&stream)
            .shard_count(1)
            .send()
            .await
            .expect("stream");
        let stream_arn = format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{stream}");
        Self {
            iam: aws_sdk_iam::Client::new(&config),
            sqs,
            kinesis,
            stream_arn,
            queue_url,
            queue_arn,
            topic_arn,
            topic_sink,
            bus_arn,
            bus_sink,
        }
    }

    /// A role trusting `principal` with `external_id`; its ARN.
    async fn role(&self, principal: &str, external_id: &str) -> String {
        self.iam
            .create_role()
            .role_name(unique_name("hl-dest"))
            .assume_role_policy_document(trust(principal, external_id))
            .send()
            .await
            .expect("role")
            .role()
            .expect("role")
            .arn()
            .to_owned()
    }

    /// Every message in `url` (up to 10), with string attributes; deleted once read.
    async fn drain(&self, url: &str) -> Vec<(String, BTreeMap<String, String>)> {
        hookline_tests::drain_queue(&self.sqs, url).await
    }

    /// Every record in the stream's shard, from its start: (partition key, data).
    async fn records(&self) -> Vec<(String, String)> {
        let shard = self
            .kinesis
            .list_shards()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .expect("shards")
            .shards()[0]
            .shard_id()
            .to_owned();
        let mut iterator = self
            .kinesis
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator()
            .map(str::to_owned);
        let mut records = Vec::new();
        while let Some(it) = iterator.take() {
            let page = self
                .kinesis
                .get_records()
                .stream_arn(&self.stream_arn)
                .shard_iterator(it)
                .send()
                .await
                .expect("records");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                records.push((
                    r.partition_key().unwrap_or_default().to_owned(),
                    String::from_utf8(r.data().as_ref().to_vec()).expect("utf-8"),
                ));
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        records
    }
}

/// How a composition's queues are worked: `serve`'s own workers, or the test playing the
/// SQS event sources of `ingest` and `deliver`.
enum Pump {
    Serve(Serving),
    Lambdas(Box<Lambdas>),
}

/// The `ingest` and `deliver` handlers and the queues their event sources poll.
struct Lambdas {
    sqs: aws_sdk_sqs::Client,
    events_url: String,
    deliveries_url: String,
    ordered_url: String,
    ingest: Ingest,
    deliver: Deliver,
}

impl Pump {
    /// Fans out what the events queue holds (serve fans out at intake, in commit order).
    async fn fan_out(&self) {
        if let Self::Lambdas(l) = self {
            while play_event_source(&l.sqs, &l.events_url, |e| {
                let ingest = l.ingest.clone();
                async move { ingest.handle_batch(&received_messages(e)).await }
            })
            .await
                > 0
            {}
        }
    }

    async fn run(&self) {
        if let Self::Lambdas(l) = self {
            let Lambdas {
                sqs,
                events_url,
                deliveries_url,
                ordered_url,
                ingest,
                deliver,
            } = &**l;
            while play_event_source(sqs, events_url, |e| {
                let ingest = ingest.clone();
                async move { ingest.handle_batch(&received_messages(e)).await }
            })
            .await
                > 0
            {}
            // The ordered queue one message at a time (BatchSize 1): moto's FIFO queue hands
            // a group's messages out of order once several of them were in flight together
            // and were made visible again (SQS keeps them in order).
            for (url, batch) in [(deliveries_url, 10), (ordered_url, 1)] {
                while play_event_source_up_to(sqs, url, batch, |e| {
                    let deliver = deliver.clone();
                    async move { deliver.handle_batch(&received_messages(e)).await }
                })
                .await
                    > 0
                {}
            }
        }
    }

    async fn stop(self) {
        if let Self::Serve(serving) = self {
            serving.stop().await;
        }
    }
}

/// A message in `sink` within 20 s (the pipeline pumped meanwhile).
async fn wait_for(
    pump: &Pump,
    side: &Integrator,
    sink: &str,
    want: usize,
) -> Vec<(String, BTreeMap<String, String>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "{sink}: {} of {want} messages arrived: {got:?}",
            got.len()
        );
        pump.run().await;
        got.extend(side.drain(sink).await);
    }
    // Nothing more is coming: the pipeline is drained, and one more poll finds nothing.
    pump.run().await;
    got.extend(side.drain(sink).await);
    got
}

fn check_signed(secret: &str, body: &str, attributes: &BTreeMap<String, String>) {
    let secret = Secret::parse(secret).expect("secret");
    let ts: i64 = attributes["webhook-timestamp"].parse().expect("timestamp");
    verify(
        &[secret],
        &attributes["webhook-id"],
        ts,
        body.as_bytes(),
        &attributes["webhook-signature"],
        time::OffsetDateTime::now_utc().unix_timestamp(),
        300,
    )
    .unwrap_or_else(|e| panic!("the signature in the attributes does not verify: {e}"));
}

async fn external_id(api: &Api, app: &str) -> String {
    let (status, grant) = call(
        api,
        "POST",
        "/v1/destinations/external-ids",
        json!({"appId": app, "type": "aws-sqs", "arn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q")}),
    )
    .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(
        grant["trustPolicy"]["Statement"][0]["Principal"]["AWS"],
        PRINCIPAL
    );
    assert_eq!(
        grant["permissionPolicy"]["Statement"][0]["Action"][0],
        "sqs:SendMessage"
    );
    grant["externalId"].as_str().expect("id").to_owned()
}

fn destination(kind: &str, arn: &str, role: &str, external_id: &str) -> Value {
    let mut d = json!({"type": kind, "arn": arn, "roleArn": role, "externalId": external_id});
    if kind == "aws-eventbridge" {
        d["source"] = json!("crm.hookline");
    }
    json!({"name": format!("to {kind}"), "destination": d, "eventTypes": ["ticket.created"]})
}

async fn the_four_destinations(api: &Api, pump: Pump) {
    let side = Integrator::new().await;
    let id = external_id(api, "A1").await;
    let role = side.role(PRINCIPAL, &id).await;

    // Refused on save, each saying which step failed.
    let untrusting = side.role("arn:aws:iam::999999999999:root", &id).await;
    let other_id = external_id(api, "A1").await;
    let a2_id = external_id(api, "A2").await;
    let (gone_url, gone_arn) = integrator_queue(&side.sqs, &unique_name("dest-gone")).await;
    side.sqs
        .delete_queue()
        .queue_url(&gone_url)
        .send()
        .await
        .expect("delete");
    for (body, want) in [
        (
            destination("aws-sqs", &side.queue_arn, &untrusting, &id),
            "assuming the role was refused",
        ),
        (
            destination("aws-sqs", &side.queue_arn, &role, &other_id),
            "assuming the role was refused",
        ),
        (
            destination("aws-sqs", &gone_arn, &role, &id),
            "reading the destination was refused",
        ),
    ] {
        let (status, problem) = call(api, "POST", "/v1/webhooks?appId=A1", body).await;
        assert_eq!(status, 422, "{problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(want), "{want}: {problem}");
    }
    let (status, problem) = call(
        api,
        "POST",
        "/v1/webhooks?appId=A1",
        destination("aws-sqs", &side.queue_arn, &role, &a2_id),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("destination.externalId"),
        "{problem}"
    );
    assert!(
        side.drain(&side.queue_url).await.is_empty(),
        "no refused check sent a test message"
    );

    // Saved: each check sent one marked test message.
    let mut secrets = Vec::new();
    for (kind, arn) in [
        ("aws-sqs", side.queue_arn.as_str()),
        ("aws-sns", side.topic_arn.as_str()),
        ("aws-eventbridge", side.bus_arn.as_str()),
        ("aws-kinesis", side.stream_arn.as_str()),
    ] {
        let (status, created) = call(
            api,
            "POST",
            "/v1/webhooks?appId=A1",
            destination(kind, arn, &role, &id),
        )
        .await;
        assert_eq!(status, 201, "{kind}: {created}");
        assert_eq!(created["destination"]["type"], kind);
        assert!(created.get("url").is_none(), "{created}");
        secrets.push(created["secret"].as_str().expect("secret").to_owned());
    }
    let test = side.drain(&side.queue_url).await;
    assert_eq!(test.len(), 1, "{test:?}");
    assert_eq!(
        test[0].1.get("hookline-test").map(String::as_str),
        Some("true")
    );

    // Two events, one matching.
    for event_type in ["booking.created", "ticket.created"] {
        let (status, accepted) = call(
            api,
            "POST",
            "/v1/events",
            json!({"type": event_type, "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}}),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
    }

    let sqs_got = wait_for(&pump, &side, &side.queue_url, 1).await;
    assert_eq!(sqs_got.len(), 1, "exactly the matching event: {sqs_got:?}");
    let (body, attributes) = &sqs_got[0];
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("json")["type"],
        "ticket.created"
    );
    check_signed(&secrets[0], body, attributes);

    let sns_got = wait_for(&pump, &side, &side.topic_sink, 2).await;
    let sns_events: Vec<_> = sns_got
        .iter()
        .filter(|(_, a)| !a.contains_key("hookline-test"))
        .collect();
    assert_eq!(sns_events.len(), 1, "{sns_got:?}");
    let (body, attributes) = sns_events[0];
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("json")["type"],
        "ticket.created"
    );
    check_signed(&secrets[1], body, attributes);

    let bus_got = wait_for(&pump, &side, &side.bus_sink, 2).await;
    let bus_events: Vec<Value> = bus_got
        .iter()
        .map(|(b, _)| serde_json::from_str(b).expect("an EventBridge event"))
        .filter(|e: &Value| e["detail-type"] == "ticket.created")
        .collect();
    assert_eq!(bus_events.len(), 1, "{bus_got:?}");
    let detail = &bus_events[0]["detail"];
    assert_eq!(bus_events[0]["source"], "crm.hookline");
    let headers: BTreeMap<String, String> =
        serde_json::from_value(detail["headers"].clone()).expect("headers");
    check_signed(
        &secrets[2],
        detail["payload"].as_str().expect("payload"),
        &headers,
    );

    // The stream: the check's test record, then the matching event keyed by its URN.
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        pump.run().await;
        let records = side.records().await;
        if records.len() >= 2 || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let data: Vec<(String, Value)> = records
        .iter()
        .map(|(key, d)| {
            (
                key.clone(),
                serde_json::from_str(d).expect("a record's data"),
            )
        })
        .collect();
    assert_eq!(data.len(), 2, "the test record and one event: {records:?}");
    assert_eq!(data[0].1["headers"]["hookline-test"], "true", "{records:?}");
    let (key, record) = &data[1];
    assert_eq!(key, "urn:allthings:app:A1:ticket:CAT7:T99");
    let payload = record["payload"].as_str().expect("payload");
    assert_eq!(
        serde_json::from_str::<Value>(payload).expect("json")["type"],
        "ticket.created"
    );
    let headers: BTreeMap<String, String> =
        serde_json::from_value(record["headers"].clone()).expect("headers");
    check_signed(&secrets[3], payload, &headers);

    // The queue deleted after save: the delivery fails as final (404), in the attempt log.
    let (status, webhooks) = call(api, "GET", "/v1/webhooks?appId=A1", Value::Null).await;
    assert_eq!(status, 200);
    let sqs_hook = webhooks["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|w| w["destination"]["type"] == "aws-sqs")
        .expect("the SQS webhook")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    side.sqs
        .delete_queue()
        .queue_url(&side.queue_url)
        .send()
        .await
        .expect("delete");
    let (status, _) = call(
        api,
        "POST",
        "/v1/events",
        json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T100", "data": {}}),
    )
    .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        pump.run().await;
        let (_, log) = call(
            api,
            "GET",
            &format!("/v1/webhooks/{sqs_hook}/deliveries"),
            Value::Null,
        )
        .await;
        let failed = log["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["status"] == "failed");
        if let Some(a) = failed {
            assert_eq!(a["responseStatus"], 404, "{a}");
            assert!(
                a["responseExcerpt"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("NonExistentQueue")
                    || a["responseExcerpt"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("QueueDoesNotExist"),
                "{a}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pump.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn embedded_delivers_to_sqs_sns_eventbridge_and_kinesis_through_an_assumed_role() {
    let (api, pump) = serve("destinations").await;
    the_four_destinations(&api, pump).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn aws_delivers_to_sqs_sns_eventbridge_and_kinesis_through_an_assumed_role() {
    let (api, pump) = lambdas("dest").await;
    the_four_destinations(&api, pump).await;
}

/// The `api`, `ingest` and `deliver` handlers on a fresh table and queues on moto.
async fn lambdas(name: &str) -> (Api, Pump) {
    let (dynamo, sqs, r) = hookline_tests::fresh_aws(name).await;
    let mut aws = hookline_tests::aws_ports(&dynamo, &sqs, &r);
    aws.ports.destinations = Some(Arc::new(AwsDestinations::new(
        moto_config().await,
        Duration::from_secs(5),
    )));
    let settings = settings();
    let http = Arc::new(ReqwestSender::new(settings.targets, "Hookline/test").expect("client"));
    let api = Api::from_ports(&aws.ports, http.clone(), settings, None);
    let ingest = Ingest::from_ports(
        &aws.ports,
        aws.dead_letters(&r.events_dlq_url),
        IngestSettings::default(),
    );
    // The deliver Lambda is another process: its own sessions, not the api's.
    aws.ports.destinations = Some(Arc::new(AwsDestinations::new(
        moto_config().await,
        Duration::from_secs(5),
    )));
    let deliver = Deliver::from_ports(&aws.ports, http, DeliverSettings::default());
    let pump = Pump::Lambdas(Box::new(Lambdas {
        sqs,
        events_url: r.events_queue_url.clone(),
        deliveries_url: r.deliveries_queue_url.clone(),
        ordered_url: r.ordered_deliveries_queue_url.clone(),
        ingest,
        deliver,
    }));
    (api, pump)
}

/// `hookline serve` on a fresh store, its API and its workers.
async fn serve(name: &str) -> (Api, Pump) {
    serve_at(&hookline_tests::temp_db(name)).await
}

/// `hookline serve` on the store at `path` (a restart when it was served before).
async fn serve_at(path: &std::path::Path) -> (Api, Pump) {
    // `hookline serve` loads the SDK's configuration (AWS_ENDPOINT_URL: moto) on first use.
    moto_config().await;
    let local = Local::open(path, settings(), "permissions".into())
        .await
        .expect("open");
    let api = local.router.clone();
    (api, Pump::Serve(Serving::start(local).await))
}

/// Saves an SQS webhook, then the role stops trusting Hookline's external id (the integrator
/// changed its trust policy); `restart` brings up a deliverer with no session cached (a new
/// Lambda container, or `serve` restarted). Its deliveries fail as final, 403, saying the
/// role could not be assumed.
async fn untrusted_role_fails_deliveries<F, Fut>(api: Api, pump: Pump, restart: F)
where
    F: FnOnce(Pump) -> Fut,
    Fut: std::future::Future<Output = (Api, Pump)>,
{
    let side = Integrator::new().await;
    let id = external_id(&api, "A1").await;
    let role = side.role(PRINCIPAL, &id).await;
    let (status, created) = call(
        &api,
        "POST",
        "/v1/webhooks?appId=A1",
        destination("aws-sqs", &side.queue_arn, &role, &id),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let hook = created["id"].as_str().expect("id").to_owned();
    side.iam
        .update_assume_role_policy()
        .role_name(role.rsplit('/').next().expect("name"))
        .policy_document(trust(PRINCIPAL, "hookline-someone-else"))
        .send()
        .await
        .expect("trust changed");
    let (api, pump) = restart(pump).await;
    let (status, _) = call(
        &api,
        "POST",
        "/v1/events",
        json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T1", "data": {}}),
    )
    .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        pump.run().await;
        let (_, log) = call(
            &api,
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries"),
            Value::Null,
        )
        .await;
        if let Some(a) = log["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["status"] == "failed")
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no failed attempt: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["responseStatus"], 403, "{failed}");
    let said = failed["responseExcerpt"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("AssumeRole") && said.contains("AccessDenied"),
        "{failed}"
    );
    let (_, webhook) = call(&api, "GET", &format!("/v1/webhooks/{hook}"), Value::Null).await;
    assert_eq!(
        webhook["failing"]["failures"], 1,
        "counted toward auto-disable: {webhook}"
    );
    let rest: Vec<_> = side.drain(&side.queue_url).await;
    assert_eq!(
        rest.len(),
        1,
        "only the check's test message arrived: {rest:?}"
    );
    pump.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn embedded_fails_deliveries_to_a_role_that_stopped_trusting_hookline() {
    let path = hookline_tests::temp_db("dest-untrusted");
    let (api, pump) = serve_at(&path).await;
    untrusted_role_fails_deliveries(api, pump, |pump| async {
        pump.stop().await;
        serve_at(&path).await
    })
    .await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn aws_fails_deliveries_to_a_role_that_stopped_trusting_hookline() {
    let (api, pump) = lambdas("dest-untrusted").await;
    untrusted_role_fails_deliveries(api.clone(), pump, |pump| async move { (api, pump) }).await;
}

/// An ordered webhook to a FIFO queue that throttles every other send: every event arrives
/// once, in the order published, each group's messages under one `MessageGroupId`.
async fn fifo_order_under_throttling(api: &Api, pump: Pump) {
    let side = Integrator::new().await;
    let id = external_id(api, "A1").await;
    let role = side.role(PRINCIPAL, &id).await;
    let name = format!("{}.fifo", unique_name("dest-flaky-"));
    let (url, arn) = integrator_queue(&side.sqs, &name).await;
    let mut body = destination("aws-sqs", &arn, &role, &id);
    body["ordering"] = json!("per-webhook");
    body["retry"] = json!({"schedule": ["1s", "1s", "1s", "1s"], "maxAttempts": 5});
    let (status, created) = call(api, "POST", "/v1/webhooks?appId=A1", body).await;
    assert_eq!(status, 201, "{created}");
    let hook = created["id"].as_str().expect("id").to_owned();
    let test = side.drain(&url).await;
    assert_eq!(test.len(), 1, "the check's test message: {test:?}");
    const N: usize = 5;
    for i in 0..N {
        let (status, body) = call(
            api,
            "POST",
            "/v1/events",
            json!({"type": "ticket.created", "urn": format!("urn:allthings:app:A1:ticket:CAT7:T{i}"), "data": {"n": i}}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        // One publisher, one event at a time: fan-out queues them in the order published (a
        // batch of events from the standard events queue is fanned out concurrently).
        pump.fan_out().await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < N {
        if Instant::now() > deadline {
            let path = format!("/v1/webhooks/{hook}/deliveries?limit=100");
            let (_, log) = call(api, "GET", &path, Value::Null).await;
            panic!("{} of {N} arrived: {got:?}; attempts: {log}", got.len());
        }
        pump.run().await;
        got.extend(side.drain(&url).await);
    }
    let order: Vec<i64> = got
        .iter()
        .map(|(b, _)| {
            serde_json::from_str::<Value>(b).expect("json")["data"]["n"]
                .as_i64()
                .expect("n")
        })
        .collect();
    assert_eq!(
        order,
        (0..N as i64).collect::<Vec<_>>(),
        "in the order published"
    );
    let (_, log) = call(
        api,
        "GET",
        &format!("/v1/webhooks/{hook}/deliveries?limit=100"),
        Value::Null,
    )
    .await;
    let throttled = log["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "retrying" && a["responseStatus"] == 429)
        .count();
    assert!(
        throttled >= N / 2,
        "the queue throttled sends and they were retried: {log}"
    );
    pump.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn embedded_keeps_a_fifo_destination_in_order_under_throttling() {
    let (api, pump) = serve("dest-fifo").await;
    fifo_order_under_throttling(&api, pump).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn aws_keeps_a_fifo_destination_in_order_under_throttling() {
    let (api, pump) = lambdas("dest-fifo").await;
    fifo_order_under_throttling(&api, pump).await;
}
