//! Credentials at rest: no signing secret and no custom header value is readable in the
//! SQLite file, its WAL, or a DynamoDB item; deliveries still verify with the Standard
//! Webhooks reference library; keys rotate and retire; a store never starts with keys that do
//! not open it; plaintext written before sealing is sealed on start; a tampered value fails
//! that webhook's delivery, said in the attempt log, and nothing is sent.

use std::time::Duration;

use hookline::keys;
use hookline::Local;
use hookline_core::ports::{AttemptLog, WebhookStore};
use hookline_core::sealed::{encode_key, generate_key, Protected, Sealed};
use hookline_core::signing::Secret;
use hookline_core::webhook::WebhookUrl;
use hookline_tests::receiver::TestReceiver;
use hookline_tests::stack::{self, call, eventually, is_probe, principal, Stack};
use hookline_tests::{local_settings, reference_verify, rekey, temp_db, webhook};
use serde_json::json;

fn python() -> String {
    std::env::var("HOOKLINE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("HOOKLINE_TEST_PYTHON is not set: run ./tests/run.sh, which installs the test venv with standardwebhooks and names its python")
    })
}

/// Creates a webhook with a chosen secret and an API-key header, delivers one event, and
/// checks the delivery (reference library) and the raw store (neither value in it).
async fn nothing_readable_at_rest(s: &dyn Stack) {
    let python = python();
    let admin = principal("admin", "edit-app:A1 publish-events:A1");
    let rx = TestReceiver::always(200).await;
    let secret = Secret::generate().expect("rng").expose();
    let api_key = format!("sk_live_{}", ulid::Ulid::new());
    let (status, created) = call(
        s,
        &admin,
        "POST",
        "/v1/webhooks",
        Some(json!({
            "name": "CRM",
            "url": format!("{}/in", rx.url),
            "eventTypes": ["ticket.*"],
            "urns": ["urn:allthings:app:A1:*"],
            "secret": secret,
            "customHeaders": {"X-Api-Key": api_key},
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    // Its editors still read the header value back.
    let (_, read) = call(s, &admin, "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(read["customHeaders"]["X-Api-Key"], json!(api_key), "{read}");
    assert!(read.get("secret").is_none(), "{read}");

    stack::publish(
        s,
        &admin,
        "sealed1",
        "ticket.created",
        "urn:allthings:app:A1:ticket:C1:T1",
    )
    .await;
    let delivery = eventually("sealed1 delivered", || async {
        rx.requests()
            .into_iter()
            .find(|r| !is_probe(r) && r.header("webhook-id") == Some("sealed1"))
    })
    .await;
    assert_eq!(delivery.header("x-api-key"), Some(api_key.as_str()));
    assert_eq!(reference_verify(&python, &secret, &delivery), Ok(()));

    let raw = s.raw_store().await;
    let text = String::from_utf8_lossy(&raw);
    assert!(!raw.is_empty());
    assert!(text.contains(&id), "the dump holds the webhook at all");
    let key_part = secret.trim_start_matches("whsec_");
    assert!(
        !text.contains(key_part),
        "the signing secret is readable at rest"
    );
    assert!(
        !text.contains(&api_key),
        "the header value is readable at rest"
    );
    assert!(text.contains("hl1:k"), "sealed values are stored");
}

#[tokio::test]
#[ignore = "needs the standardwebhooks reference library: ./tests/run.sh installs it and runs this with --include-ignored"]
async fn nothing_readable_in_the_sqlite_file_or_its_wal() {
    let s = stack::embedded(
        "sealed",
        local_settings(),
        hookline_deliver::DeliverSettings::default(),
    )
    .await;
    nothing_readable_at_rest(s.as_ref()).await;
    s.stop().await;
}

#[tokio::test]
#[ignore = "needs moto (KMS, DynamoDB, SQS) and the standardwebhooks reference library: ./tests/run.sh starts and installs them and runs this with --include-ignored"]
async fn nothing_readable_in_a_dynamodb_item_with_kms_data_keys() {
    let s = stack::moto("sealed", hookline_deliver::DeliverSettings::default()).await;
    nothing_readable_at_rest(s.as_ref()).await;
    s.stop().await;
}

/// The store's documents, by webhook id, as the file holds them.
fn documents(path: &std::path::Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(path).expect("open");
    let mut stmt = c
        .prepare("SELECT id, doc FROM webhooks ORDER BY id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

#[tokio::test]
async fn keys_rotate_and_retire_and_a_wrong_or_missing_key_never_starts_the_store() {
    let path = temp_db("keys");
    let local = Local::open(&path, local_settings(), "permissions".into())
        .await
        .expect("first start creates the key file");
    let key_file = keys::key_file(&path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let first = local.keys.active().to_string();
    let hook = rekey(
        &webhook(&["urn:allthings:app:A1:*"], &["*"], true),
        &local.keys,
        None,
    );
    local.db.create(&hook).await.expect("create");
    drop(local);
    let before = documents(&path);

    // Another key: refused, naming the key the store needs; nothing rewritten.
    let db = hookline_core::adapters::sqlite::Database::open(&path).expect("open");
    let other = encode_key(&generate_key().expect("rng"));
    let refused = keys::load(&path, &db, Some(&other))
        .await
        .expect_err("a wrong key never opens the store")
        .to_string();
    assert!(refused.contains(&first), "{refused}");
    assert_eq!(documents(&path), before, "no row was rewritten");

    // No key file: refused too, never a silent new key.
    let aside = path.with_extension("key.aside");
    std::fs::rename(&key_file, &aside).expect("move the key file");
    let missing = Local::open(&path, local_settings(), "permissions".into())
        .await
        .err()
        .expect("a missing key file never starts a sealed store")
        .to_string();
    assert!(
        missing.contains("missing") && missing.contains(&first),
        "{missing}"
    );
    assert!(!key_file.exists(), "no new key file was made");
    assert_eq!(documents(&path), before);
    std::fs::rename(&aside, &key_file).expect("restore the key file");

    // Rotate: a new active key, everything resealed under it, the old key still listed.
    let new = keys::add_key(&path).expect("rotate").to_string();
    let loaded = keys::load(&path, &db, None).await.expect("reseal");
    assert_eq!(loaded.keyring.active().as_str(), new);
    assert_eq!((loaded.usage.webhooks, loaded.usage.resealed), (1, 1));
    let usage = hookline_core::reseal::key_usage(&db).await.expect("usage");
    assert_eq!(usage.by_key.keys().collect::<Vec<_>>(), [&new]);
    // Idempotent: again, nothing to do.
    let again = keys::load(&path, &db, None).await.expect("again");
    assert_eq!(again.usage.resealed, 0);
    // The active key cannot be retired; the old one can, and the store still opens.
    assert!(keys::remove_key(&path, &new).is_err());
    keys::remove_key(&path, &first).expect("retire the old key");
    drop(db);
    let reopened = Local::open(&path, local_settings(), "permissions".into())
        .await
        .expect("opens with the new key alone");
    let stored = reopened
        .db
        .get(&hook.id)
        .await
        .expect("get")
        .expect("stored");
    let opened = stored
        .active_secrets(&reopened.keys, time::OffsetDateTime::now_utc())
        .expect("opens under the new key");
    let original = hook
        .active_secrets(&reopened.keys, time::OffsetDateTime::now_utc())
        .expect_err("the old ciphertext names a retired key");
    assert!(original.to_string().contains(&first), "{original}");
    assert_eq!(opened.len(), 1);
}

#[tokio::test]
async fn plaintext_from_before_sealing_is_sealed_on_start() {
    let path = temp_db("legacy");
    let local = Local::open(&path, local_settings(), "permissions".into())
        .await
        .expect("open");
    let mut hook = webhook(&["urn:allthings:app:A1:*"], &["*"], true);
    hook.spec.custom_headers = vec![hookline_core::webhook::CustomHeader {
        name: "X-Api-Key".into(),
        value: Protected::Plain("legacy-api-key".into()),
    }];
    hook.seal(&hookline_tests::test_keys()).expect("seal");
    let hook = rekey(&hook, &local.keys, None);
    local.db.create(&hook).await.expect("create");
    let secret = hook
        .active_secrets(&local.keys, time::OffsetDateTime::now_utc())
        .expect("opens")[0]
        .expose();
    drop(local);
    // As a store written before sealing holds it: both values in plaintext.
    let c = rusqlite::Connection::open(&path).expect("open");
    let (id, doc) = documents(&path).pop().expect("one");
    let mut value: serde_json::Value = serde_json::from_str(&doc).expect("json");
    value["secrets"][0]["secret"] = json!(secret);
    value["customHeaders"][0]["value"] = json!("legacy-api-key");
    c.execute(
        "UPDATE webhooks SET doc = ?2 WHERE id = ?1",
        rusqlite::params![id, value.to_string()],
    )
    .expect("write the legacy row");
    drop(c);

    let local = Local::open(&path, local_settings(), "permissions".into())
        .await
        .expect("a start seals it");
    let (_, doc) = documents(&path).pop().expect("one");
    assert!(
        !doc.contains(&secret) && !doc.contains("legacy-api-key"),
        "{doc}"
    );
    let stored = local.db.get(&hook.id).await.expect("get").expect("stored");
    assert_eq!(
        stored
            .active_secrets(&local.keys, time::OffsetDateTime::now_utc())
            .expect("opens")[0]
            .expose(),
        secret
    );
    assert_eq!(
        stored.open_headers(&local.keys).expect("opens"),
        [("X-Api-Key".to_owned(), "legacy-api-key".to_owned())]
    );
    assert_eq!(stored.version, hook.version + 1, "caches see the change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_secret_fails_its_delivery_in_the_attempt_log_and_sends_nothing() {
    let rx = TestReceiver::always(200).await;
    let path = temp_db("tampered");
    let local = Local::open(&path, local_settings(), "permissions".into())
        .await
        .expect("open");
    let mut hook = webhook(&["urn:allthings:app:T1:*"], &["*"], true);
    hook.spec.endpoint = hookline_core::webhook::Endpoint::Http(
        WebhookUrl::parse_stored(&format!("{}/in", rx.url)).expect("url"),
    );
    let mut hook = rekey(&hook, &local.keys, None);
    local.db.create(&hook).await.expect("create");
    // One character of the stored ciphertext changed, as a store edited behind our back.
    let Protected::Sealed(sealed) = &hook.secrets[0].secret else {
        panic!("stored sealed")
    };
    let mut text = sealed.as_str().to_owned();
    let last = text.pop().expect("non-empty");
    text.push(if last == 'A' { 'B' } else { 'A' });
    hook.secrets[0].secret = Protected::Sealed(Sealed::parse(&text).expect("well-formed"));
    hook.version += 1;
    local.db.update(&hook, 1).await.expect("update");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = local.spawn_workers(stopped);
    local
        .queues
        .events
        .send(
            r#"{"id":"evt_t1","type":"ticket.created","urn":"urn:allthings:app:T1:ticket:C:T","data":{}}"#,
            Duration::ZERO,
            None,
        )
        .await
        .expect("send");
    let attempt = eventually("the attempt is recorded", || async {
        local
            .db
            .list(&hook.id, None, None, 10)
            .await
            .ok()
            .and_then(|p| p.items.into_iter().next())
    })
    .await;
    assert_eq!(
        attempt.status,
        hookline_core::delivery::AttemptStatus::Failed
    );
    let error = attempt.error.unwrap_or_default();
    assert!(
        error.contains("secret") && error.contains("does not decrypt"),
        "{error}"
    );
    assert!(
        rx.requests().iter().all(is_probe),
        "nothing was sent signed with garbage"
    );
    let _ = stop.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }
}

#[tokio::test]
#[ignore = "needs moto (KMS, DynamoDB, SQS): ./tests/run.sh starts it and runs this with --include-ignored"]
async fn kms_data_keys_rotate_reseal_and_retire_on_moto() {
    use hookline_infra::keys::TableKeys;
    let (dynamo, sqs, r) = hookline_tests::fresh_aws("kms-keys").await;
    let kms = aws_sdk_kms::Client::new(&hookline_tests::moto_config().await);
    let aws = hookline_tests::aws_ports_with_kms(&dynamo, &sqs, &kms, &r);
    let store = aws.ports.webhooks.clone();
    // The first data key is made on first use, and seals a webhook.
    let keys = aws.ports.vault.keyring().await.expect("first data key");
    let first = keys.active().to_string();
    let hook = rekey(
        &webhook(&["urn:allthings:app:K1:*"], &["*"], true),
        &keys,
        None,
    );
    store.create(&hook).await.expect("create");

    let table = TableKeys::new(
        dynamo.clone(),
        kms.clone(),
        &r.table_name,
        Some(r.kms_key_id.clone()),
    );
    let status = table.status().await.expect("status");
    assert_eq!(status.active.as_deref(), Some(first.as_str()));
    assert_eq!(status.usage.by_key.get(&first), Some(&1));

    let (new, usage) = table.rotate().await.expect("rotate");
    assert_ne!(new, first);
    assert_eq!((usage.webhooks, usage.resealed), (1, 1));
    assert!(table.retire(&new).await.is_err(), "the active key stays");
    table.retire(&first).await.expect("retire the old key");
    let status = table.status().await.expect("status");
    assert_eq!(status.keys, std::slice::from_ref(&new));

    // A fresh container (nothing cached) opens the resealed webhook with the new key alone.
    let fresh = hookline_tests::aws_ports_with_kms(&dynamo, &sqs, &kms, &r);
    let keys = fresh.ports.vault.keyring().await.expect("keys");
    let stored = fresh
        .ports
        .webhooks
        .get(&hook.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.version, hook.version + 1);
    assert!(stored
        .active_secrets(&keys, time::OffsetDateTime::now_utc())
        .is_ok());
    // Resealing again changes nothing.
    assert_eq!(table.reseal().await.expect("reseal").resealed, 0);
}
