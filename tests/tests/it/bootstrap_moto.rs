//! The bootstrap against moto: the table's keys and TTL, and every queue's redrive policy.

use aws_sdk_dynamodb::types::{BillingMode, KeyType, TimeToLiveStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use hookline_core::retry::RetryPolicy;
use hookline_infra::{bootstrap, queue_arn, ResourceNames, TTL_ATTRIBUTE};
use hookline_tests::{moto_config, unique_name};

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn bootstrap_creates_the_table_and_queues_with_redrive_and_is_idempotent() {
    let config = moto_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let kms = aws_sdk_kms::Client::new(&config);
    let names = ResourceNames::with_prefix(&unique_name("boot"));
    let policy = RetryPolicy::default();

    let first = bootstrap(&dynamo, &sqs, &kms, &names, &policy)
        .await
        .expect("bootstrap");
    let again = bootstrap(&dynamo, &sqs, &kms, &names, &policy)
        .await
        .expect("second bootstrap converges");
    assert_eq!(first, again);
    assert!(
        first.kms_key_id.starts_with("arn:aws:kms:"),
        "{}",
        first.kms_key_id
    );

    let table = dynamo
        .describe_table()
        .table_name(&names.table)
        .send()
        .await
        .expect("describe table")
        .table
        .expect("table");
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("PK".to_owned(), KeyType::Hash),
            ("SK".to_owned(), KeyType::Range)
        ]
    );
    assert_eq!(
        table.billing_mode_summary.and_then(|b| b.billing_mode),
        Some(BillingMode::PayPerRequest)
    );
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(&names.table)
        .send()
        .await
        .expect("describe ttl")
        .time_to_live_description
        .expect("ttl description");
    assert_eq!(ttl.time_to_live_status, Some(TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name.as_deref(), Some(TTL_ATTRIBUTE));

    // Events redrive after the policy's receives; deliveries are dead-lettered by the
    // deliverer per webhook, and their redrive is a backstop above any webhook's attempts.
    for (queue, dlq, want) in [
        (&first.events_queue_url, &first.events_dlq_url, 6),
        (&first.deliveries_queue_url, &first.deliveries_dlq_url, 12),
        (
            &first.ordered_deliveries_queue_url,
            &first.ordered_deliveries_dlq_url,
            12,
        ),
    ] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .expect("attributes");
        let redrive: serde_json::Value = serde_json::from_str(
            attrs
                .get(&QueueAttributeName::RedrivePolicy)
                .expect("RedrivePolicy set"),
        )
        .expect("redrive is JSON");
        let max: u32 = match &redrive["maxReceiveCount"] {
            serde_json::Value::String(s) => s.parse().expect("number"),
            v => u32::try_from(v.as_u64().expect("number")).expect("small"),
        };
        assert_eq!(max, want);
        let dlq_arn = queue_arn(&sqs, dlq).await.expect("dlq arn");
        assert_eq!(
            redrive["deadLetterTargetArn"],
            serde_json::Value::String(dlq_arn)
        );
        assert_eq!(
            attrs
                .get(&QueueAttributeName::VisibilityTimeout)
                .map(String::as_str),
            Some("60")
        );
    }
    for fifo in [
        &first.ordered_deliveries_queue_url,
        &first.ordered_deliveries_dlq_url,
    ] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(fifo)
            .attribute_names(QueueAttributeName::FifoQueue)
            .send()
            .await
            .expect("fifo attributes")
            .attributes
            .expect("attributes");
        assert_eq!(
            attrs
                .get(&QueueAttributeName::FifoQueue)
                .map(String::as_str),
            Some("true"),
            "{fifo} is a FIFO queue"
        );
    }
    let dlq_attrs = sqs
        .get_queue_attributes()
        .queue_url(&first.deliveries_dlq_url)
        .attribute_names(QueueAttributeName::MessageRetentionPeriod)
        .send()
        .await
        .expect("dlq attributes")
        .attributes
        .expect("attributes");
    assert_eq!(
        dlq_attrs
            .get(&QueueAttributeName::MessageRetentionPeriod)
            .map(String::as_str),
        Some("1209600")
    );
}
