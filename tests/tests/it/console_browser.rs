//! The console in a real browser: Debian's Chromium driven through chromedriver (WebDriver,
//! `fantoccini`) against `hookline serve` and loopback receivers. An App administrator signs
//! in through the console link, creates a webhook through the form (a ticket-category URN and a
//! custom header), sees the endpoint check fail by the URL field, saves a good endpoint and
//! reads the secret once, sees a published event in the delivery log, redelivers it, disables
//! and deletes the webhook. A webhook with a hostile name (made through the API) shows as text. Screenshots of the list, the form
//! and the log are written to `target/console-screenshots/` (and to `docs/` with
//! `HOOKLINE_BLESS=1`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hookline::Local;
use hookline_api::settings::Settings;
use hookline_core::auth::Principal;
use hookline_core::target::TargetPolicy;
use hookline_tests::receiver::TestReceiver;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";
const NAME: &str = "CRM: tickets of category CAT7";
const HOSTILE: &str = "<img src=x onerror=alert(1)> CRM";

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver on a free loopback port, answering.
async fn chromedriver() -> (Running, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let running = Running(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (running, url)
}

async fn browser(webdriver: &str, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a Chromium session")
}

/// Waits up to 10 s for an element matching `css`.
async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Waits up to 10 s until the element's text contains `text`; returns the text.
async fn text_of(c: &Client, css: &str, text: &str) -> String {
    until_says(c, css, text, None).await
}

/// Clicks the log's Refresh until its rows say `text` (the attempt is recorded just after the
/// endpoint answers); returns the rows' text.
async fn log_says(c: &Client, text: &str) -> String {
    until_says(c, "#log-rows", text, Some("#refresh-log")).await
}

/// Reads `css`'s text until it contains `text` (up to 10 s), clicking `refresh` between reads.
async fn until_says(c: &Client, css: &str, text: &str, refresh: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if got.contains(text) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never said {text:?}; it says {got:?}"
        );
        if let Some(button) = refresh {
            click(c, button).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let e = find(c, css).await;
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

async fn screenshot(c: &Client, name: &str) {
    c.execute("window.scrollTo(0, 0)", Vec::new())
        .await
        .expect("scroll to the top");
    let png = c.screenshot().await.expect("screenshot");
    save_png(name, &png);
}

/// Writes a picture to target/console-screenshots, and to docs/ when HOOKLINE_BLESS is set.
fn save_png(name: &str, png: &[u8]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("target/console-screenshots")];
    if std::env::var_os("HOOKLINE_BLESS").is_some() {
        dirs.push(root.join("docs"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}

/// A picture of one element (the page scrolled to it), written as [`screenshot`] writes.
async fn element_screenshot(c: &Client, css: &str, name: &str) {
    let png = find(c, css)
        .await
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot of {css}: {e}"));
    save_png(name, &png);
}

/// The deliveries `receiver` got: POSTs of events, not the endpoint checks on save.
fn deliveries(receiver: &TestReceiver) -> Vec<hookline_tests::receiver::Captured> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.header("webhook-id")
                    .is_some_and(|id| id.starts_with("evt_"))
        })
        .collect()
}

fn missing_browser() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} is not installed (Debian packages chromium and chromium-driver; ./tests/run.sh installs them)"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(hookline_tests::unique_name(name));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Settings that let the console's webhooks reach the tests' loopback receivers.
fn loopback_settings() -> Settings {
    Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    }
}

/// The subject of [`serve_for_an_a1_admin`]'s token.
const A1_ADMIN: &str = "admin-a1";

/// Hookline serving a new store `db` with `settings`, and a token of an administrator of one
/// App, A1 (`edit-app:A1 publish-events:A1`): the console selects that App.
async fn serve_for_an_a1_admin(
    db: &str,
    settings: Settings,
) -> (Local, String, hookline_tests::Serving) {
    let local = Local::open(&hookline_tests::temp_db(db), settings, "permissions".into())
        .await
        .expect("open");
    let admin = Principal::from_claims(
        A1_ADMIN,
        Some(&Value::String("edit-app:A1 publish-events:A1".into())),
    );
    let token = local.mint_token(&admin, Duration::from_secs(3600));
    let server = hookline_tests::Serving::start(local.clone()).await;
    (local, token, server)
}

/// Chromium (a fresh profile) on the console link `hookline serve` prints, the token in its
/// fragment; returns once App A1's Webhooks tab shows. Keep the driver while the browser runs.
async fn signed_in(server: &hookline_tests::Serving, token: &str) -> (Running, Client) {
    let (driver, webdriver) = chromedriver().await;
    let c = browser(&webdriver, &scratch("chromium-profile")).await;
    c.goto(&format!("{}/console#token={token}", server.base))
        .await
        .expect("open the console");
    text_of(&c, "#list-title", "Webhooks of App A1").await;
    (driver, c)
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: ./tests/run.sh installs them and runs this"]
async fn an_app_administrator_manages_a_webhook_in_the_console() {
    if let Some(why) = missing_browser() {
        panic!("{why}");
    }
    let (local, token, server) = serve_for_an_a1_admin("console", loopback_settings()).await;
    let platform = local.mint_token(
        &Principal::from_claims("platform", Some(&json!("manage-grants:*"))),
        Duration::from_secs(3600),
    );
    let failing = TestReceiver::always(500).await;
    let good = TestReceiver::always(200).await;
    // Sign in with the console link `hookline serve` prints: the token in the fragment.
    let (_driver, c) = signed_in(&server, &token).await;
    let address = c.current_url().await.expect("url");
    assert_eq!(
        address.fragment(),
        Some("/apps/A1"),
        "the token left the address bar for the list's own address: {address}"
    );
    text_of(&c, "#list-empty", "No webhooks").await;
    // Any Content-Security-Policy violation from here on (the chart's SVG among them) is kept.
    c.execute(
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))",
        Vec::new(),
    )
    .await
    .expect("script");

    // Create a webhook: a URL answering 500, one event, a category URN, a custom header.
    // By keyboard: Enter on the button, Space on a checkbox.
    find(&c, "#create")
        .await
        .send_keys(ENTER)
        .await
        .expect("Enter on Create a webhook");
    text_of(&c, "#form-title", "Create a webhook").await;
    type_into(&c, "#f-name", NAME).await;
    type_into(&c, "#f-url", &format!("{}/hooks", failing.url)).await;
    find(&c, "input[value='ticket.created']")
        .await
        .send_keys(" ")
        .await
        .expect("Space on ticket.created");
    type_into(
        &c,
        "#f-urns-list input",
        "urn:allthings:app:A1:ticket:CAT7:*",
    )
    .await;
    click(&c, "#add-header").await;
    type_into(&c, "#f-headers-list .header-name", "X Api Key").await;
    text_of(&c, "#f-headers-error", "must start with X-").await;
    type_into(&c, "#f-headers-list .header-name", "X-Api-Key").await;
    type_into(&c, "#f-headers-list .header-value", "crm-key-1").await;
    let shown = find(&c, "#f-headers-error")
        .await
        .text()
        .await
        .expect("text");
    assert!(shown.is_empty(), "a good header shows no problem: {shown}");
    // Test endpoint, before saving: the probe says what the endpoint answered.
    click(&c, "#probe").await;
    let probed = text_of(&c, "#f-url-probe", "Not OK").await;
    assert!(probed.contains("500"), "{probed}");
    click(&c, "#save").await;
    let said = text_of(&c, "#f-url-error", "500").await;
    assert!(said.contains("must answer 200"), "{said}");
    assert_eq!(
        find(&c, "#f-url")
            .await
            .attr("aria-invalid")
            .await
            .expect("attr")
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        find(&c, "#f-name")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some(NAME),
        "the form keeps what was typed"
    );
    // Every control the page shows, those the script added too, has a label.
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.offsetParent !== null && e.labels.length === 0)
                .map(e => e.id || e.outerHTML)",
            Vec::new(),
        )
        .await
        .expect("script");
    assert_eq!(unlabelled, json!([]), "controls without a label");
    screenshot(&c, "console-form.png").await;

    // A good endpoint: saved, and the secret shown once.
    type_into(&c, "#f-url", &format!("{}/hooks", good.url)).await;
    click(&c, "#save").await;
    text_of(&c, "#secret-title", "Signing secret").await;
    let secret = find(&c, "#secret")
        .await
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    text_of(&c, "#secret-view", "It will not be shown again").await;
    click(&c, "#secret-done").await;
    text_of(&c, "#detail-title", NAME).await;
    assert_eq!(
        find(&c, "#secret")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some(""),
        "the secret is gone once done"
    );

    // Another webhook, made through the API with a name that is markup: the list shows both,
    // that name as text.
    let hostile = reqwest::Client::new()
        .post(format!("{}/v1/webhooks?appId=A1", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": HOSTILE, "url": format!("{}/other", good.url), "eventTypes": ["booking.*"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(hostile.status().as_u16(), 201);
    click(&c, "#back").await;
    let rows = text_of(&c, "#list-rows", HOSTILE).await;
    assert!(
        rows.contains(NAME) && rows.contains("ticket.created") && rows.contains("Enabled"),
        "{rows}"
    );
    let images = c.find_all(Locator::Css("img")).await.expect("query");
    assert!(images.is_empty(), "the name was rendered as markup");
    text_of(&c, "#list-rows", "None yet").await;
    screenshot(&c, "console-list.png").await;

    // An event through the API reaches it; the log shows the delivery.
    let published = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&token)
        .json(&json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    while deliveries(&good).is_empty() {
        assert!(Instant::now() < deadline, "the event was not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries(&good)[0].header("x-api-key"), Some("crm-key-1"));
    assert!(
        deliveries(&failing).is_empty(),
        "the refused endpoint was never saved, so it gets nothing"
    );
    let open = c
        .find(Locator::XPath(&format!(
            "//tbody[@id='list-rows']//button[text()='{NAME}']"
        )))
        .await
        .expect("the webhook's row");
    open.click().await.expect("open it");
    text_of(&c, "#detail-title", NAME).await;
    let log = log_says(&c, "delivered").await;
    assert!(log.contains("200"), "{log}");
    screenshot(&c, "console-log.png").await;

    // Redeliver: a second delivery of the same event, attempt 2 in the log.
    click(&c, "#log-rows button[aria-label^='Redeliver']").await;
    text_of(&c, "#status", "Redelivery queued").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while deliveries(&good).len() < 2 {
        assert!(Instant::now() < deadline, "the redelivery did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = deliveries(&good);
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        click(&c, "#refresh-log").await;
        let rows = c
            .find_all(Locator::Css("#log-rows tr"))
            .await
            .expect("rows");
        if rows.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log never showed the redelivery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its health: the chart has one bar group per hour of the window and bars in each hour
    // with attempts, as the stats API counts them; its numbers are in a table too.
    let deadline = Instant::now() + Duration::from_secs(10);
    let chart = loop {
        let drawn = c
            .execute(
                "const hours = [...document.querySelectorAll('#chart g.hour')];
                 return {hours: hours.length,
                         withBars: hours.filter(g => g.querySelector('rect.bar')).length,
                         delivered: document.querySelectorAll('#chart rect.bar-delivered').length,
                         rows: document.querySelectorAll('#chart-rows tr').length,
                         label: document.querySelector('#chart svg[role=img] desc')?.textContent || '',
                         badge: document.querySelector('#health-summary .badge')?.textContent || ''}",
                Vec::new(),
            )
            .await
            .expect("script");
        if drawn["delivered"].as_u64().unwrap_or(0) > 0 || Instant::now() > deadline {
            break drawn;
        }
        click(&c, "#refresh-log").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The same webhook's stats, as the page read them.
    let webhook_id = c
        .execute(
            "return [...document.querySelectorAll('#detail-facts dd')].map(d => d.textContent).find(t => t.startsWith('wh_'))",
            Vec::new(),
        )
        .await
        .expect("script");
    let stats: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/webhooks/{}/stats",
            server.base,
            webhook_id.as_str().expect("the id is shown")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON");
    let buckets = stats["buckets"].as_array().expect("buckets");
    let with_data = buckets
        .iter()
        .filter(|b| b["delivered"].as_u64().unwrap_or(0) + b["failed"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(with_data >= 1, "{stats}");
    assert_eq!(
        chart["hours"],
        json!(buckets.len()),
        "one group per hour: {chart}"
    );
    assert_eq!(
        chart["withBars"],
        json!(with_data),
        "bars in each hour with data: {chart}"
    );
    assert_eq!(
        chart["rows"],
        json!(buckets.len()),
        "the numbers as a table: {chart}"
    );
    assert!(
        chart["label"]
            .as_str()
            .is_some_and(|l| l.contains("delivered")),
        "the chart has a text alternative: {chart}"
    );
    assert!(
        chart["badge"]
            .as_str()
            .is_some_and(|b| b.starts_with("Healthy: 100%")),
        "{chart}"
    );
    screenshot(&c, "console-health.png").await;
    // The list shows each webhook's success rate as a badge, in words.
    click(&c, "#back").await;
    text_of(&c, "#list-rows .badge", "Healthy: 100%").await;
    let open = c
        .find(Locator::XPath(&format!(
            "//tbody[@id='list-rows']//button[text()='{NAME}']"
        )))
        .await
        .expect("the webhook's row");
    open.click().await.expect("open it again");
    text_of(&c, "#detail-title", NAME).await;

    // Edit the name; rotate the secret (the new one shown once); send a test event.
    // A change made elsewhere while the form is open is not overwritten.
    let id = find(&c, "#detail-facts").await.text().await.expect("facts");
    let id = id
        .split_whitespace()
        .find(|w| w.starts_with("wh_"))
        .expect("the id is shown")
        .to_owned();
    click(&c, "#edit").await;
    text_of(&c, "#form-title", "Edit").await;
    let elsewhere = reqwest::Client::new()
        .patch(format!("{}/v1/webhooks/{id}", server.base))
        .bearer_auth(&token)
        .json(&json!({"customHeaders": {"X-Api-Key": "crm-key-2"}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(elsewhere.status().as_u16(), 200);
    type_into(&c, "#f-name", &format!("{NAME} (edited)")).await;
    click(&c, "#save").await;
    text_of(&c, "#form-error", "changed since you opened").await;
    click(&c, "#cancel").await;
    text_of(&c, "#detail-title", NAME).await;
    click(&c, "#edit").await;
    text_of(&c, "#form-title", "Edit").await;
    type_into(&c, "#f-name", &format!("{NAME} (edited)")).await;
    // Delivery rules: a filter that is not JSON is caught before anything is sent.
    type_into(&c, "#f-filter", "{\"data\": {").await;
    click(&c, "#save").await;
    text_of(&c, "#f-filter-error", "is not JSON").await;
    type_into(&c, "#f-filter", "{\"data\": {\"priority\": [\"high\"]}}").await;
    type_into(&c, "#f-retry", "5s, 1m").await;
    type_into(&c, "#f-rate", "3").await;
    find(&c, "#f-ordering")
        .await
        .select_by_value("per-urn")
        .await
        .expect("select per-urn");
    click(&c, "#save").await;
    text_of(&c, "#detail-title", "(edited)").await;
    text_of(&c, "#status", "Saved").await;
    let facts = text_of(&c, "#detail-facts", "Delivery rules").await;
    assert!(
        facts.contains("{\"data\":{\"priority\":[\"high\"]}}")
            && facts.contains("retries after 5s, 1m (3 attempts)")
            && facts.contains("at most 3 per second")
            && facts.contains("in order per resource URN"),
        "{facts}"
    );
    screenshot(&c, "console-rules.png").await;
    let saved: Value = reqwest::Client::new()
        .get(format!("{}/v1/webhooks/{id}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(saved["rateLimit"]["perSecond"], 3, "{saved}");
    assert_eq!(saved["ordering"], "per-urn");
    assert_eq!(saved["retry"]["schedule"], json!(["5s", "1m"]));
    click(&c, "#rotate").await;
    text_of(&c, "#secret-title", "Signing secret").await;
    let rotated = find(&c, "#secret")
        .await
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );
    click(&c, "#secret-done").await;
    text_of(&c, "#detail-title", "(edited)").await;
    click(&c, "#send-test").await;
    text_of(&c, "#status", "Test event").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !good.requests().iter().any(|r| {
        r.method == "POST"
            && String::from_utf8_lossy(&r.body).contains("\"webhook.test\"")
            && r.header("webhook-id")
                .is_some_and(|id| id.starts_with("evt_"))
    }) {
        assert!(Instant::now() < deadline, "the test event did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Recover: the test delivery's last attempt made a final failure (as a run of 5xx that
    // exhausted its retries leaves it); the console counts it, sends it again with a
    // progress bar, and the endpoint receives it with the same webhook-id.
    let test_event = log_says(&c, "delivered").await;
    assert!(!test_event.is_empty());
    let log: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/webhooks/{id}/deliveries?limit=1",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let last: hookline_core::delivery::Attempt =
        serde_json::from_value(log["items"][0].clone()).expect("an attempt");
    let exhausted = hookline_core::delivery::Attempt {
        attempt_id: ulid::Ulid::new().to_string(),
        attempt: last.attempt + 5,
        at: time::OffsetDateTime::now_utc(),
        status: hookline_core::delivery::AttemptStatus::Exhausted,
        response_status: Some(503),
        ..last.clone()
    };
    hookline_core::ports::AttemptLog::record(
        &local.db,
        &exhausted,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    )
    .await
    .expect("record");
    let before = good.requests().len();
    click(&c, "#recover").await;
    text_of(&c, "#recover-count", "1 delivery failed for good").await;
    text_of(&c, "#recover-yes", "Redeliver 1").await;
    click(&c, "#recover-yes").await;
    text_of(&c, "#recover-state", "1 of 1 sent (done)").await;
    text_of(&c, "#status", "Recovered 1 delivery").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !good
        .requests()
        .iter()
        .skip(before)
        .any(|r| r.method == "POST" && r.header("webhook-id") == Some(last.event_id.as_str()))
    {
        assert!(
            Instant::now() < deadline,
            "the recovered delivery did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&c, "console-recover.png").await;
    click(&c, "#recover").await;
    text_of(&c, "#recover-count", "No deliveries to recover").await;
    assert!(
        find(&c, "#recover-yes")
            .await
            .attr("disabled")
            .await
            .expect("attr")
            .is_some(),
        "nothing to redeliver: the button is disabled"
    );
    click(&c, "#recover-no").await;
    // Send past events: one event of the last 24 hours matches the webhook's rules now (the
    // earlier "Leaking tap" has no priority); it is counted, and sent again marked as backfill.
    let published = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&token)
        .json(&json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T100", "data": {"priority": "high"}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status().as_u16(), 202);
    let event_id = published.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !good
        .requests()
        .iter()
        .any(|r| r.header("webhook-id") == Some(event_id.as_str()))
    {
        assert!(Instant::now() < deadline, "the live event did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, "#backfill").await;
    text_of(&c, "#recover-title", "Send past events").await;
    text_of(&c, "#recover-count", "1 past event matches").await;
    let before = good.requests().len();
    click(&c, "#recover-yes").await;
    text_of(&c, "#recover-state", "1 of 1 sent (done)").await;
    text_of(&c, "#status", "Sent 1 past event").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !good.requests().iter().skip(before).any(|r| {
        r.header("webhook-backfill") == Some("true")
            && r.header("webhook-id") == Some(event_id.as_str())
    }) {
        assert!(
            Instant::now() < deadline,
            "the backfilled event did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, "#recover-no").await;

    // Disable, then delete (confirmed).
    click(&c, "#toggle").await;
    text_of(&c, "#detail-facts", "Disabled").await;
    text_of(&c, "#toggle", "Enable").await;
    click(&c, "#delete").await;
    text_of(&c, "#confirm-delete", "Delete this webhook?").await;
    click(&c, "#confirm-yes").await;
    text_of(&c, "#status", "Deleted").await;
    let rows = text_of(&c, "#list-rows", HOSTILE).await;
    assert!(
        !rows.contains("(edited)"),
        "deleted, gone from the list: {rows}"
    );

    // The platform revokes the admin's permission on A1: the Webhooks page shows the
    // remaining webhook suspended, as an error.
    let revoked = reqwest::Client::new()
        .post(format!("{}/v1/grants/revoke", server.base))
        .bearer_auth(&platform)
        .json(&json!({"sub": A1_ADMIN, "appId": "A1"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status().as_u16(), 200);
    click(&c, "#tab-webhooks").await;
    let rows = text_of(&c, "#list-rows", "Suspended in App A1: permission revoked").await;
    assert!(rows.contains(HOSTILE), "{rows}");
    let flagged = c
        .execute(
            "return [...document.querySelectorAll('#list-rows td.alert')].map(e => e.textContent)",
            Vec::new(),
        )
        .await
        .expect("script");
    assert!(
        flagged.as_array().is_some_and(|cells| cells.len() == 1
            && cells[0]
                .as_str()
                .is_some_and(|t| t.contains("permission revoked"))),
        "the suspension is shown as an error: {flagged}"
    );
    screenshot(&c, "console-suspended.png").await;

    // No Content-Security-Policy violation at any point.
    let violations = c
        .execute(
            "return window.cspViolations || ['the listener was lost']",
            Vec::new(),
        )
        .await
        .expect("script");
    assert_eq!(violations, json!([]), "CSP violations");
    // No script ran from the hostile name at any point.
    assert!(
        c.get_alert_text().await.is_err(),
        "an alert opened: the name ran as script"
    );
    // A pasted token signs in too.
    click(&c, "#sign-out").await;
    type_into(&c, "#token", &token).await;
    click(&c, "#sign-in-form button[type='submit']").await;
    text_of(&c, "#list-title", "Webhooks of App A1").await;
    c.close().await.expect("close the browser");
    server.stop().await;
}

/// What a new user met in the console, fixed: an empty form says plainly what each field
/// needs; a field's error goes when it is changed, and the summary when none is left; a
/// ticked event family shows its members as included; a signing secret can be chosen (and
/// `hookline listen --secret` verifies with it); the log shows each attempt's event type and
/// id, and a test event's attempt appears by itself; each view has its own address, so a
/// reload reopens it and Back moves between views, never showing the token.
#[tokio::test]
#[ignore = "needs Chromium and chromedriver: ./tests/run.sh installs them and runs this"]
async fn the_console_answers_a_new_user_plainly() {
    if let Some(why) = missing_browser() {
        panic!("{why}");
    }
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_local, token, server) =
        serve_for_an_a1_admin("console-papercuts", loopback_settings()).await;
    // `hookline listen`, knowing the secret the form will be given.
    let port = free_port();
    let mut listener = Command::new(hookline_tests::ServeProcess::binary("debug"))
        .args([
            "listen",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--secret",
            SECRET,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline listen starts");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        use std::io::BufRead as _;
        let out = listener.stdout.take().expect("stdout");
        let heard = heard.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                heard.lock().expect("lines").push(line);
            }
        });
    }
    let _listener = Running(listener);
    let (_driver, c) = signed_in(&server, &token).await;

    // An empty form: each field says what it needs, in plain words.
    click(&c, "#create").await;
    text_of(&c, "#form-title", "Create a webhook").await;
    click(&c, "#save").await;
    text_of(&c, "#f-url-error", "enter the endpoint's https:// URL").await;
    text_of(&c, "#f-name-error", "must not be empty").await;
    let banner = |c: &Client| {
        let c = c.clone();
        async move {
            find(&c, "#form-error")
                .await
                .attr("hidden")
                .await
                .expect("attr")
                .is_none()
        }
    };
    assert!(banner(&c).await, "the summary says the form was not saved");

    // Each field's error goes as it is changed; the summary once none is left.
    type_into(&c, "#f-name", NAME).await;
    assert_eq!(
        find(&c, "#f-name-error").await.text().await.expect("text"),
        ""
    );
    assert_eq!(
        find(&c, "#f-name")
            .await
            .attr("aria-invalid")
            .await
            .expect("attr"),
        None
    );
    assert!(banner(&c).await, "other fields still need attention");
    type_into(&c, "#f-url", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(
        find(&c, "#f-url-error").await.text().await.expect("text"),
        ""
    );

    // A ticked family shows its members as included, and gives them back when unticked.
    click(&c, "#ev-ticket-all").await;
    let member = find(&c, "input[value='ticket.created']").await;
    assert_eq!(
        member.prop("checked").await.expect("prop").as_deref(),
        Some("true")
    );
    assert!(member.attr("disabled").await.expect("attr").is_some());
    text_of(&c, "#f-events-list", "included in ticket.*").await;
    assert!(
        !banner(&c).await,
        "no field has an error left: the summary is gone"
    );
    click(&c, "#ev-ticket-all").await;
    let member = find(&c, "input[value='ticket.created']").await;
    assert_eq!(
        member.prop("checked").await.expect("prop").as_deref(),
        Some("false")
    );
    assert!(member.attr("disabled").await.expect("attr").is_none());
    click(&c, "#ev-ticket-all").await;
    click(&c, "#probe").await;
    text_of(&c, "#f-url-probe", "OK").await;

    // A chosen secret: checked as the API checks it, then used.
    click(&c, "#f-advanced summary").await;
    type_into(&c, "#f-secret", "whsec_short").await;
    click(&c, "#save").await;
    text_of(&c, "#f-secret-error", "must be whsec_ followed by base64").await;
    text_of(&c, "#form-title", "Create a webhook").await;
    type_into(&c, "#f-secret", SECRET).await;
    assert_eq!(
        find(&c, "#f-secret-error")
            .await
            .text()
            .await
            .expect("text"),
        ""
    );
    click(&c, "#save").await;
    text_of(&c, "#secret-title", "Signing secret").await;
    assert_eq!(
        find(&c, "#secret")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some(SECRET)
    );
    click(&c, "#secret-done").await;
    text_of(&c, "#detail-title", NAME).await;
    let address = c.current_url().await.expect("url");
    let fragment = address.fragment().unwrap_or_default().to_owned();
    assert!(fragment.starts_with("/apps/A1/webhooks/wh_"), "{address}");
    let id = fragment.rsplit('/').next().expect("id").to_owned();
    let saved: Value = reqwest::Client::new()
        .get(format!("{}/v1/webhooks/{id}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(saved["eventTypes"], json!(["ticket.*"]), "{saved}");

    // An event: `hookline listen` verifies it with the chosen secret; the log shows its type
    // and id (copyable).
    let published: Value = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&token)
        .json(&json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T1", "data": {}}))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    let event_id = published["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = heard.lock().expect("lines").clone();
        if let Some(line) = lines.iter().find(|l| l.contains(&event_id)) {
            assert!(line.contains("signature ok"), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the listener heard nothing: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = log_says(&c, &event_id).await;
    assert!(rows.contains("ticket.created"), "{rows}");
    find(
        &c,
        &format!("#log-rows button[aria-label='Copy event id {event_id}']"),
    )
    .await;

    // A test event's attempt shows up by itself.
    click(&c, "#send-test").await;
    let said = text_of(&c, "#status", ": delivered (200)").await;
    assert!(said.starts_with("Test event evt_"), "{said}");
    let rows = find(&c, "#log-rows").await.text().await.expect("text");
    assert!(
        rows.contains("webhook.test"),
        "the log was refreshed: {rows}"
    );
    element_screenshot(&c, "#log", "console-log-table.png").await;

    // Addresses: a reload reopens the webhook; Back moves between views, inside the console.
    c.refresh().await.expect("reload");
    text_of(&c, "#detail-title", NAME).await;
    click(&c, "#edit").await;
    text_of(&c, "#form-title", "Edit").await;
    let address = c.current_url().await.expect("url");
    assert_eq!(
        address.fragment(),
        Some(format!("/apps/A1/webhooks/{id}/edit").as_str())
    );
    c.back().await.expect("back");
    text_of(&c, "#detail-title", NAME).await;
    click(&c, "#back").await;
    text_of(&c, "#list-title", "Webhooks of App A1").await;
    c.back().await.expect("back");
    text_of(&c, "#detail-title", NAME).await;
    let address = c.current_url().await.expect("url");
    assert_eq!(address.path(), "/console");
    assert!(
        !address.as_str().contains(&token),
        "the token is never in the address"
    );
    c.close().await.expect("close the browser");
    server.stop().await;
}

#[tokio::test]
#[ignore = "needs Chromium, chromedriver and moto: ./tests/run.sh installs and starts them and runs this"]
async fn an_app_administrator_sends_a_webhook_to_an_sqs_queue_in_the_console() {
    if let Some(why) = missing_browser() {
        panic!("{why}");
    }
    const PRINCIPAL: &str = "arn:aws:iam::123456789012:root";
    // The integrator's queue, on moto (`hookline serve` reaches it through AWS_ENDPOINT_URL).
    let aws = hookline_tests::moto_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (queue_url, queue_arn) =
        hookline_tests::integrator_queue(&sqs, &hookline_tests::unique_name("console-dest")).await;
    let settings = Settings {
        aws_principal: Some(PRINCIPAL.into()),
        ..hookline_tests::local_settings()
    };
    let (_local, token, server) = serve_for_an_a1_admin("console-dest", settings).await;
    let (_driver, c) = signed_in(&server, &token).await;
    click(&c, "#create").await;
    text_of(&c, "#form-title", "Create a webhook").await;
    type_into(&c, "#f-name", "CRM queue").await;
    find(&c, "#f-target")
        .await
        .select_by_value("aws-sqs")
        .await
        .expect("choose an SQS queue");
    assert!(
        !find(&c, "#f-url")
            .await
            .is_displayed()
            .await
            .expect("shown?"),
        "an AWS destination has no URL field"
    );
    // Saving before the role is set up says what to do first.
    click(&c, "#save").await;
    text_of(&c, "#f-destination-error", "Show the policies first").await;
    type_into(&c, "#f-arn", &queue_arn).await;
    click(&c, "#show-policies").await;
    let external_id = text_of(&c, "#f-external-id", "hookline-").await;
    let trust = find(&c, "#f-trust-policy")
        .await
        .text()
        .await
        .expect("text");
    let permission = find(&c, "#f-permission-policy")
        .await
        .text()
        .await
        .expect("text");
    let trust: Value = serde_json::from_str(&trust).expect("the trust policy is JSON to paste");
    let permission: Value =
        serde_json::from_str(&permission).expect("the permission policy is JSON to paste");
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], PRINCIPAL);
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id.trim()
    );
    assert_eq!(permission["Statement"][0]["Resource"], queue_arn);
    assert_eq!(permission["Statement"][0]["Action"][0], "sqs:SendMessage");
    screenshot(&c, "console-destination.png").await;

    // The integrator pastes the trust policy into a new role.
    let role = aws_sdk_iam::Client::new(&aws)
        .create_role()
        .role_name(hookline_tests::unique_name("console-role"))
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("role")
        .role()
        .expect("role")
        .arn()
        .to_owned();
    type_into(&c, "#f-role", &role).await;
    find(&c, "input[value='ticket.created']")
        .await
        .click()
        .await
        .expect("ticket.created");
    click(&c, "#save").await;
    text_of(&c, "#secret-title", "Signing secret").await;
    let secret = find(&c, "#secret")
        .await
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    click(&c, "#secret-done").await;
    let facts = text_of(&c, "#detail-facts", "AWS destination").await;
    assert!(
        facts.contains(&queue_arn) && facts.contains(&role),
        "{facts}"
    );

    // The check on save sent one test message; an event follows, signed.
    let published = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&token)
        .json(&json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "messages in the queue: {got:?}");
        got.extend(hookline_tests::drain_queue(&sqs, &queue_url).await);
    }
    let (body, attributes) = got
        .iter()
        .find(|(_, a)| !a.contains_key("hookline-test"))
        .expect("the event, not the test message");
    let secret = hookline_core::signing::Secret::parse(&secret).expect("secret");
    hookline_core::signing::verify(
        &[secret],
        &attributes["webhook-id"],
        attributes["webhook-timestamp"].parse().expect("number"),
        body.as_bytes(),
        &attributes["webhook-signature"],
        time::OffsetDateTime::now_utc().unix_timestamp(),
        300,
    )
    .expect("the event's signature verifies");
    c.close().await.expect("close");
    server.stop().await;
}
