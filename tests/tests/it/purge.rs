//! Purging an App (`DELETE /v1/apps/{appId}`) on both compositions (`hookline serve`'s, and
//! the three handlers on moto): App AppGone's events, attempts and rate-limit state go, its
//! only-App webhook is deleted, a webhook naming both Apps loses AppGone's URNs and keeps
//! delivering AppKept's events, and AppKept's monitor hears `webhook.app-purged`. The test
//! reads the raw tables (every SQLite row, every DynamoDB item) before and after: no row of
//! AppGone is left, and every row of AppKept is byte for byte what it was.

use hookline_deliver::DeliverSettings;
use hookline_tests::receiver::TestReceiver;
use hookline_tests::stack::{call, delivered, eventually, principal, Stack};
use serde_json::{json, Value};

/// The store's rows once they stop changing (deliveries recorded, claims settled).
async fn settled_rows(stack: &dyn Stack) -> Vec<String> {
    let mut last = stack.raw_rows().await;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let now = stack.raw_rows().await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the store kept changing");
}

async fn create(
    stack: &dyn Stack,
    who: &hookline_core::auth::Principal,
    app: &str,
    body: Value,
) -> String {
    let (status, hook) = call(
        stack,
        who,
        "POST",
        &format!("/v1/webhooks?appId={app}"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    hook["id"].as_str().expect("id").to_owned()
}

async fn purging_an_app_leaves_no_row_of_it_and_every_other_row_as_it_was(owned: Box<dyn Stack>) {
    let stack = &*owned;
    let receiver = TestReceiver::always(200).await;
    let monitor = TestReceiver::always(200).await;
    let admin = principal(
        "integrator",
        "edit-app:AppGone edit-app:AppKept publish-events:AppGone publish-events:AppKept",
    );
    let platform = principal("platform", "manage-apps:*");
    let url = format!("{}/hook", receiver.url);
    let only = create(
        stack,
        &admin,
        "AppGone",
        json!({
            "name": "gone only", "url": url, "eventTypes": ["ticket.*"],
            "rateLimit": {"perSecond": 50}
        }),
    )
    .await;
    let both = create(
        stack,
        &admin,
        "AppGone",
        json!({
            "name": "both", "url": url, "eventTypes": ["ticket.*"],
            "urns": ["urn:allthings:app:AppGone:*", "urn:allthings:app:AppKept:ticket:*"]
        }),
    )
    .await;
    let kept = create(
        stack,
        &admin,
        "AppKept",
        json!({
            "name": "kept", "url": url, "eventTypes": ["ticket.*"], "rateLimit": {"perSecond": 50}
        }),
    )
    .await;
    let watcher = create(stack, &admin, "AppKept", json!({
        "name": "monitor", "url": format!("{}/ops", monitor.url), "eventTypes": ["webhook.app-purged"]
    }))
    .await;

    for n in 1..=3 {
        for app in ["AppGone", "AppKept"] {
            let (status, body) = call(
                stack,
                &admin,
                "POST",
                "/v1/events",
                Some(json!({"type": "ticket.created", "urn": format!("urn:allthings:app:{app}:ticket:C1:T{n}"), "data": {"n": n}})),
            )
            .await;
            assert_eq!(status, 202, "{body}");
        }
    }
    // AppGone's three reach `only` and `both`; AppKept's reach `both` and `kept`.
    eventually("the events are delivered", || async {
        (delivered(&receiver).len() >= 12).then_some(())
    })
    .await;
    let before = settled_rows(stack).await;
    assert!(
        before.iter().any(|r| r.contains("AppGone")),
        "the store holds AppGone rows"
    );

    // The platform's permission, nobody else's; the App id is checked.
    let (status, problem) = call(stack, &admin, "DELETE", "/v1/apps/AppGone", None).await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = call(stack, &platform, "DELETE", "/v1/apps/App:Gone", None).await;
    assert_eq!(status, 400, "{problem}");

    let (status, job) = call(stack, &platform, "DELETE", "/v1/apps/AppGone", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        (job["kind"].as_str(), job["appId"].as_str()),
        (Some("purge"), Some("AppGone")),
        "{job}"
    );
    let id = job["id"].as_str().expect("job id").to_owned();
    // Asked again while it runs: the same job.
    let (status, again) = call(stack, &platform, "DELETE", "/v1/apps/AppGone", None).await;
    assert_eq!(status, 202, "{again}");
    let (_, now) = call(stack, &platform, "GET", &format!("/v1/jobs/{id}"), None).await;
    if !matches!(now["state"].as_str(), Some("done" | "failed" | "cancelled")) {
        assert_eq!(again["id"], json!(id), "{again}");
    }
    // Whoever may not purge the App does not see the job.
    let (status, _) = call(stack, &admin, "GET", &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(status, 404);
    let done = eventually("the purge ends", || async {
        let (_, job) = call(stack, &platform, "GET", &format!("/v1/jobs/{id}"), None).await;
        matches!(job["state"].as_str(), Some("done" | "failed" | "cancelled")).then_some(job)
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["purge"]["deletedWebhooks"], json!([only]), "{done}");
    assert_eq!(done["purge"]["changedWebhooks"], json!([both]), "{done}");
    assert_eq!(done["purge"]["events"], 3, "{done}");
    assert_eq!(done["purge"]["attempts"], 6, "{done}");

    // The webhooks as the API shows them.
    let (status, _) = call(stack, &admin, "GET", &format!("/v1/webhooks/{only}"), None).await;
    assert_eq!(status, 404);
    let (status, changed) = call(stack, &admin, "GET", &format!("/v1/webhooks/{both}"), None).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        changed["urns"],
        json!(["urn:allthings:app:AppKept:ticket:*"]),
        "{changed}"
    );
    // The owner's monitor on AppKept hears it.
    let heard = eventually("webhook.app-purged is delivered", || async {
        delivered(&monitor)
            .into_iter()
            .find(|e| e["type"] == "webhook.app-purged")
    })
    .await;
    assert_eq!(heard["data"]["webhookId"], json!(both), "{heard}");
    assert_eq!(heard["data"]["appId"], "AppKept", "{heard}");
    assert_eq!(heard["data"]["purgedAppId"], "AppGone", "{heard}");
    let (_, listed) = call(stack, &admin, "GET", "/v1/webhooks?appId=AppGone", None).await;
    assert_eq!(listed["items"], json!([]), "{listed}");

    let after = settled_rows(stack).await;
    // No row of AppGone is left: none names it or its deleted webhook, but for the purge's
    // own record and the announcements to AppKept, which name it by design.
    let left: Vec<&String> = after
        .iter()
        .filter(|r| r.contains("AppGone") || r.contains(&only))
        .filter(|r| !r.contains(&id) && !r.contains("webhook.app-purged"))
        .collect();
    assert!(
        left.is_empty(),
        "rows of the purged App are left: {left:#?}"
    );
    // Every other row is as it was, byte for byte: all but AppGone's, the changed webhook's
    // own definition (it lost AppGone's URNs) and the Apps' route versions.
    let definition = |r: &str| {
        r.contains(&format!("|id={both}|"))
            || r.starts_with("webhook_routes|")
            || r.starts_with("app_versions|")
            || r.contains(&format!("S(\"WH#{both}\")|SK=S(\"META\")"))
            || r.contains(&format!("SK=S(\"WH#{both}\")"))
            || r.contains("SK=S(\"VERSION\")")
    };
    let missing: Vec<&String> = before
        .iter()
        .filter(|r| !r.contains("AppGone") && !r.contains(&only) && !definition(r))
        .filter(|r| !after.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "rows of other Apps changed or went: {missing:#?}"
    );
    assert!(
        before.iter().any(|r| r.contains(&kept)) && before.iter().any(|r| r.contains(&watcher)),
        "the comparison covers AppKept's webhooks"
    );

    // AppKept keeps working, through the changed webhook too; AppGone's events reach nobody.
    let seen = delivered(&receiver).len();
    for app in ["AppKept", "AppGone"] {
        let (status, body) = call(
            stack,
            &admin,
            "POST",
            "/v1/events",
            Some(json!({"type": "ticket.created", "urn": format!("urn:allthings:app:{app}:ticket:C1:T9"), "data": {"after": true}})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    eventually(
        "AppKept's event reaches both of its ticket webhooks",
        || async { (delivered(&receiver).len() >= seen + 2).then_some(()) },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let late: Vec<Value> = delivered(&receiver)[seen..].to_vec();
    assert_eq!(late.len(), 2, "{late:#?}");
    assert!(
        late.iter()
            .all(|e| e["urn"].as_str().is_some_and(|u| u.contains("AppKept"))),
        "{late:#?}"
    );

    // GraphQL: the same purge, refused without manage-apps; an App with nothing runs and
    // finds nothing.
    let mutation = json!({"query": "mutation { purgeApp(appId: \"AppNobody\") { success code message job { id kind appId state } } }"});
    let (status, refused) = call(stack, &admin, "POST", "/graphql", Some(mutation.clone())).await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["data"]["purgeApp"]["success"], false, "{refused}");
    assert_eq!(
        refused["data"]["purgeApp"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let (status, again) = call(stack, &platform, "POST", "/graphql", Some(mutation)).await;
    assert_eq!(status, 200, "{again}");
    let job = &again["data"]["purgeApp"]["job"];
    assert_eq!(
        (job["kind"].as_str(), job["appId"].as_str()),
        (Some("purge"), Some("AppNobody")),
        "{again}"
    );
    let id = job["id"].as_str().expect("id").to_owned();
    let done = eventually("the empty purge ends", || async {
        let (_, job) = call(stack, &platform, "GET", &format!("/v1/jobs/{id}"), None).await;
        (job["state"] == "done").then_some(job)
    })
    .await;
    assert_eq!(done["purge"]["events"], 0, "{done}");
    owned.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_purging_an_app_leaves_no_row_of_it_and_every_other_row_as_it_was() {
    let stack = hookline_tests::stack::embedded(
        "purge",
        hookline_tests::local_settings(),
        DeliverSettings::default(),
    )
    .await;
    purging_an_app_leaves_no_row_of_it_and_every_other_row_as_it_was(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn moto_purging_an_app_leaves_no_row_of_it_and_every_other_row_as_it_was() {
    let stack = hookline_tests::stack::moto("purge", DeliverSettings::default()).await;
    purging_an_app_leaves_no_row_of_it_and_every_other_row_as_it_was(stack).await;
}

/// A purge resumed by another process (a restart: a fresh `Jobs` over the same store, the
/// test handing it each chunk) still knows the webhook it stripped in its first chunk, which
/// names the App no more, and erases that webhook's attempts of the App only; a stale copy of
/// a chunk does nothing; a cancelled purge runs no further chunk.
#[tokio::test]
async fn a_resumed_purge_finishes_what_it_started() {
    use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
    use hookline_core::event::EventId;
    use hookline_core::job::{Job, JobChunk, JobState};
    use hookline_core::jobs::Jobs;
    use hookline_core::ports::{AttemptLog as _, WebhookStore as _};
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    let both = hookline_tests::webhook(
        &["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"],
        &["ticket.created"],
        true,
    );
    let only = hookline_tests::webhook(&["urn:allthings:app:A1:*"], &["ticket.created"], true);
    db.create(&both).await.expect("create");
    db.create(&only).await.expect("create");
    let now = time::OffsetDateTime::now_utc();
    let attempt = |hook: &hookline_core::webhook::Webhook, app: &str| {
        let event = EventId::generate();
        Attempt {
            attempt_id: ulid::Ulid::new().to_string(),
            webhook_id: hook.id.clone(),
            delivery_id: DeliveryId::for_pair(&event, &hook.id),
            event_id: event,
            app_id: Some(app.to_owned()),
            event_type: None,
            attempt: 1,
            at: now,
            status: AttemptStatus::Delivered,
            response_status: Some(200),
            error: None,
            latency_ms: 1,
            response_excerpt: String::new(),
            next_retry_at: None,
            backfill: false,
        }
    };
    let records: Vec<Attempt> = (0..3)
        .flat_map(|_| {
            [
                attempt(&both, "A1"),
                attempt(&both, "A2"),
                attempt(&only, "A1"),
            ]
        })
        .collect();
    db.record_many(&records, now + time::Duration::days(1))
        .await
        .expect("record");
    let chunk = |job: &Job, n| JobChunk {
        job: job.id.clone(),
        chunk: n,
    };

    let first = Jobs::from_ports(&hookline_tests::embedded_ports(&db));
    let (job, started) = first.purge("A1", "platform").await.expect("purge");
    assert!(started);
    assert_eq!(
        first.purge("A1", "platform").await.expect("again").0.id,
        job.id
    );
    first.run_chunk(&chunk(&job, 0)).await.expect("chunk 0");
    let stripped = db.get(&both.id).await.expect("get").expect("kept");
    assert!(!stripped.spec.names_app("A1") && stripped.spec.names_app("A2"));
    assert_eq!(db.get(&only.id).await.expect("get"), None);

    // Another process takes over.
    let second = Jobs::from_ports(&hookline_tests::embedded_ports(&db));
    let copy = second.get(&job.id).await.expect("get").expect("job");
    second
        .run_chunk(&chunk(&job, 0))
        .await
        .expect("a stale copy");
    assert_eq!(second.get(&job.id).await.expect("get"), Some(copy));
    let mut n = 1;
    let ended = loop {
        second.run_chunk(&chunk(&job, n)).await.expect("chunk");
        let now = second.get(&job.id).await.expect("get").expect("job");
        if now.state.is_final() {
            break now;
        }
        n += 1;
        assert!(n < 50, "the purge ends");
    };
    assert_eq!(ended.state, JobState::Done, "{ended:?}");
    let progress = ended.purge.expect("progress");
    assert_eq!(
        (progress.deleted, progress.stripped),
        (vec![only.id.clone()], vec![both.id.clone()])
    );
    assert_eq!(progress.attempts, 6);
    let left = db
        .list(&both.id, None, None, 100)
        .await
        .expect("list")
        .items;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|a| a.app_id.as_deref() == Some("A2")));
    assert_eq!(db.count(&only.id, None).await.expect("count"), 0);

    // A cancelled purge runs no further chunk.
    let kept = hookline_tests::webhook(&["urn:allthings:app:A3:*"], &["ticket.created"], true);
    db.create(&kept).await.expect("create");
    let (job, _) = second.purge("A3", "platform").await.expect("purge");
    second.cancel(&job.id).await.expect("cancel");
    second.run_chunk(&chunk(&job, 0)).await.expect("chunk 0");
    assert!(
        db.get(&kept.id).await.expect("get").is_some(),
        "nothing ran"
    );
}

/// The README's commands against a running `hookline serve`: a `manage-apps` token from
/// `hookline token`, `hookline purge-app` (refused without `--yes`, then followed to its
/// end), and `DELETE /v1/apps/{appId}` with that token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_purge_app_and_a_manage_apps_token_as_the_readme_runs_them() {
    use hookline_tests::{free_port, temp_db, ServeProcess};
    let receiver = TestReceiver::always(200).await;
    let db = temp_db("purge-cli");
    let port = free_port();
    let binary = ServeProcess::binary("debug");
    let server = ServeProcess::start(&binary, &db, port, &[("RUST_LOG", "warn")]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/webhooks?appId=A1"))
        .bearer_auth(&server.token)
        .json(&json!({"name": "crm", "url": format!("{}/hook", receiver.url), "eventTypes": ["ticket.created"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();

    let hookline = |args: &[&str]| {
        std::process::Command::new(&binary)
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("hookline runs")
    };
    let refused = hookline(&["purge-app", "--app", "A1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--yes"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let purged = hookline(&["purge-app", "--app", "A1", "--yes"]);
    let said = String::from_utf8_lossy(&purged.stdout);
    assert!(
        purged.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&purged.stderr)
    );
    assert!(
        said.contains("done") && said.contains("1 webhooks deleted"),
        "{said}"
    );
    let gone = http
        .get(format!("{base}/v1/webhooks/{id}"))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);

    // The dev token may not purge; the minted platform token may.
    let refused = http
        .delete(format!("{base}/v1/apps/A1"))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(refused.status(), 403);
    let minted = hookline(&[
        "token",
        "--app",
        "*",
        "--permission",
        "manage-apps",
        "--sub",
        "platform",
    ]);
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let platform = String::from_utf8(minted.stdout).expect("utf-8");
    let started = http
        .delete(format!("{base}/v1/apps/A1"))
        .bearer_auth(platform.trim())
        .send()
        .await
        .expect("delete");
    assert_eq!(started.status(), 202);
    let location = started
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .expect("Location");
    let job: Value = started.json().await.expect("json");
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().expect("id"))
    );
    drop(server);
}
