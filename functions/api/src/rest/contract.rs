//! The constraints the validators enforce, written into the generated OpenAPI document from
//! the same constants, grammars and catalog the validators use: lengths, patterns, item
//! limits, enums, header and cursor formats. And the links from `POST /v1/webhooks` to the
//! operations on `{id}`, so generated clients and stateful fuzzers can follow a created
//! webhook. What JSON Schema cannot state (rules across fields) is said in the descriptions.

use serde_json::{json, Map, Value};

use hookline_core::event_type::Catalog;
use hookline_core::urn::{DEFAULT_NAMESPACE, MAX_SEGMENTS, MAX_SEGMENT_CHARS, MAX_URN_BYTES};
use hookline_core::webhook::{
    MAX_CUSTOM_HEADERS, MAX_EVENT_TYPES, MAX_HEADER_NAME_CHARS, MAX_HEADER_VALUE_CHARS,
    MAX_NAME_CHARS, MAX_URL_CHARS, MAX_URNS, RESERVED_HEADER_PREFIXES, URL_PATTERN,
};

use super::extract::IF_MATCH_PATTERN;

/// A segment of a URN (and an App id).
fn segment() -> String {
    format!("[A-Za-z0-9._~-]{{1,{MAX_SEGMENT_CHARS}}}")
}

/// Matches `text` ignoring ASCII case, for patterns (JSON Schema has no flags).
fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else if c.is_ascii_alphanumeric() || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// An event URN (`wildcard`: a webhook's URN pattern, which may end in `:*`).
fn urn_pattern(wildcard: bool) -> String {
    let seg = segment();
    format!(
        "^{}:{}:app:{seg}(:{seg}){{0,{MAX_SEGMENTS}}}{}$",
        any_case("urn"),
        any_case(DEFAULT_NAMESPACE),
        if wildcard { "(:\\*)?" } else { "" }
    )
}

/// A custom header name: `X-`, token characters, no reserved prefix.
fn header_name_pattern() -> String {
    let reserved: Vec<String> = RESERVED_HEADER_PREFIXES
        .iter()
        .map(|p| any_case(p))
        .collect();
    format!(
        "^(?!(?:{})){}[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,{}}}$",
        reserved.join("|"),
        any_case("x-"),
        MAX_HEADER_NAME_CHARS - 2
    )
}

/// Every event-type filter a webhook may name: `*`, each family's `family.*`, each type.
fn event_type_filters(catalog: &Catalog) -> Vec<String> {
    let mut out = vec!["*".to_owned()];
    for e in catalog.entries() {
        let family = format!("{}.*", e.name.split('.').next().unwrap_or(&e.name));
        if !out.contains(&family) {
            out.push(family);
        }
    }
    out.extend(catalog.entries().iter().map(|e| e.name.clone()));
    out
}

/// A `whsec_` secret: base64 (canonical) of 24 to 64 bytes.
fn secret_pattern() -> &'static str {
    concat!(
        "^whsec_(?:",
        "(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?",
        "|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?",
        ")$"
    )
}

/// A ULID as the ulid crate reads it (Crockford base32, either case, at most `7ZZ…`).
const ULID: &str = "[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}";

fn set(target: Option<&mut Value>, entries: Value) {
    if let (Some(Value::Object(target)), Value::Object(entries)) = (target, entries) {
        for (k, v) in entries {
            target.insert(k, v);
        }
    }
}

fn prop<'a>(doc: &'a mut Value, schema: &str, field: &str) -> Option<&'a mut Value> {
    doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
}

/// A `null`-able schema (`["string","null"]`) keeps its type; the rest is added beside it.
fn headers_schema() -> Value {
    json!({
        "maxProperties": MAX_CUSTOM_HEADERS,
        "propertyNames": {"type": "string", "pattern": header_name_pattern()},
        "additionalProperties": {
            "type": "string",
            "maxLength": MAX_HEADER_VALUE_CHARS,
            "pattern": "^[\\x20-\\x7E]*$",
        },
    })
}

fn webhook_fields(doc: &mut Value, schema: &str, catalog: &Catalog) {
    set(
        prop(doc, schema, "name"),
        json!({"minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "\\S"}),
    );
    set(
        prop(doc, schema, "url"),
        json!({"format": "uri", "maxLength": MAX_URL_CHARS, "pattern": URL_PATTERN}),
    );
    set(
        prop(doc, schema, "eventTypes"),
        json!({"minItems": 1, "maxItems": MAX_EVENT_TYPES, "uniqueItems": true,
               "items": {"type": "string", "enum": event_type_filters(catalog)}}),
    );
    set(
        prop(doc, schema, "urns"),
        json!({"minItems": 1, "maxItems": MAX_URNS, "uniqueItems": true,
               "items": {"type": "string", "maxLength": MAX_URN_BYTES, "pattern": urn_pattern(true)}}),
    );
    set(prop(doc, schema, "customHeaders"), headers_schema());
}

fn parameter<'a>(
    doc: &'a mut Value,
    path: &str,
    method: &str,
    name: &str,
) -> Option<&'a mut Value> {
    let params = doc
        .pointer_mut(&format!(
            "/paths/{}/{method}/parameters",
            path.replace('~', "~0").replace('/', "~1")
        ))?
        .as_array_mut()?;
    params
        .iter_mut()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| p.get_mut("schema"))
}

/// The operations on `{id}` a created webhook leads to.
fn links() -> Value {
    let mut links = Map::new();
    for (name, op) in [
        ("GetWebhook", "getWebhook"),
        ("UpdateWebhook", "updateWebhook"),
        ("DeleteWebhook", "deleteWebhook"),
        ("RotateSecret", "rotateSecret"),
        ("EnableWebhook", "enableWebhook"),
        ("DisableWebhook", "disableWebhook"),
        ("SendTestEvent", "sendTestEvent"),
        ("ListDeliveries", "listDeliveries"),
        ("GetWebhookStats", "getWebhookStats"),
    ] {
        links.insert(
            name.to_owned(),
            json!({
                "operationId": op,
                "parameters": {"id": "$response.body#/id"},
                "description": "The webhook just created",
            }),
        );
    }
    Value::Object(links)
}

/// Writes the validators' constraints and the links into `doc`.
pub(crate) fn tighten(doc: &mut Value) {
    let catalog = Catalog::builtin();
    for schema in ["NewWebhook", "WebhookPatch"] {
        webhook_fields(doc, schema, catalog);
    }
    set(
        prop(doc, "NewWebhook", "secret"),
        json!({"pattern": secret_pattern()}),
    );
    set(
        prop(doc, "ProbeInput", "url"),
        json!({"format": "uri", "maxLength": MAX_URL_CHARS, "pattern": URL_PATTERN}),
    );
    set(prop(doc, "ProbeInput", "customHeaders"), headers_schema());
    set(
        prop(doc, "RateLimit", "perSecond"),
        json!({"minimum": 1, "maximum": hookline_core::rules::MAX_PER_SECOND}),
    );
    set(
        prop(doc, "RetryInput", "maxAttempts"),
        json!({"minimum": 1, "maximum": hookline_core::rules::MAX_ATTEMPTS}),
    );
    set(
        prop(doc, "RetryInput", "schedule"),
        json!({"maxItems": hookline_core::rules::MAX_ATTEMPTS - 1}),
    );
    // Intake.
    set(
        prop(doc, "Event", "type"),
        json!({"enum": catalog
            .entries()
            .iter()
            .map(|e| e.name.clone())
            .filter(|t| !hookline_core::operational::OPERATIONAL_TYPES.contains(&t.as_str()))
            .collect::<Vec<_>>()}),
    );
    set(
        prop(doc, "Event", "urn"),
        json!({"maxLength": MAX_URN_BYTES, "pattern": urn_pattern(false)}),
    );
    // Grants.
    set(
        prop(doc, "GrantInput", "sub"),
        json!({"minLength": 1, "maxLength": 256, "pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]*$"}),
    );
    set(
        prop(doc, "GrantInput", "appId"),
        json!({"pattern": format!("^{}$", segment())}),
    );
    // External ids for AWS destinations.
    set(
        prop(doc, "ExternalIdInput", "appId"),
        json!({"pattern": format!("^{}$", segment())}),
    );
    set(
        prop(doc, "ExternalIdInput", "type"),
        json!({"enum": hookline_core::destination::AwsService::ALL
            .iter()
            .map(|s| Value::from(s.type_name()))
            .chain([Value::Null])
            .collect::<Vec<_>>()}),
    );
    set(
        prop(doc, "ExternalIdInput", "arn"),
        json!({"maxLength": hookline_core::destination::MAX_ARN_CHARS, "pattern": hookline_core::destination::ARN_PATTERN}),
    );
    // Parameters.
    let app = json!({"pattern": format!("^{}$", segment())});
    set(parameter(doc, "/v1/webhooks", "get", "appId"), app.clone());
    set(parameter(doc, "/v1/webhooks", "post", "appId"), app.clone());
    set(parameter(doc, "/v1/apps/{appId}", "delete", "appId"), app);
    set(
        parameter(doc, "/v1/webhooks", "get", "cursor"),
        json!({"pattern": format!("^wh_{ULID}$")}),
    );
    set(
        parameter(doc, "/v1/webhooks/{id}/deliveries", "get", "cursor"),
        json!({"pattern": format!("^{ULID}$")}),
    );
    set(
        parameter(
            doc,
            "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
            "post",
            "deliveryId",
        ),
        json!({"pattern": "^dl_[0-9a-f]{32}$"}),
    );
    let paths: Vec<(String, Vec<String>)> = doc
        .get("paths")
        .and_then(Value::as_object)
        .map(|paths| {
            paths
                .iter()
                .map(|(p, ops)| {
                    let methods = ops
                        .as_object()
                        .map(|o| o.keys().cloned().collect())
                        .unwrap_or_default();
                    (p.clone(), methods)
                })
                .collect()
        })
        .unwrap_or_default();
    for (path, methods) in paths {
        for method in methods {
            set(
                parameter(doc, &path, &method, "If-Match"),
                json!({"type": "string", "pattern": IF_MATCH_PATTERN}),
            );
            if path.starts_with("/v1/webhooks/{id}") {
                set(
                    parameter(doc, &path, &method, "id"),
                    json!({"pattern": format!("^wh_{ULID}$")}),
                );
            }
        }
    }
    set(
        doc.pointer_mut("/paths/~1v1~1webhooks/post/responses/201"),
        json!({"links": links()}),
    );
    // A test event queues a delivery; the attempt log lists it; a listed delivery can be
    // sent again.
    let redeliver = |name: &str, delivery_id: &str, description: &str| {
        json!({"links": {name: {
            "operationId": "redeliver",
            "parameters": {"id": "$request.path.id", "deliveryId": delivery_id},
            "description": description,
        }}})
    };
    set(
        doc.pointer_mut("/paths/~1v1~1webhooks~1{id}~1test/post/responses/202"),
        redeliver(
            "RedeliverTestEvent",
            "$response.body#/deliveryId",
            "The test event's delivery, sent again",
        ),
    );
    set(
        doc.pointer_mut("/paths/~1v1~1webhooks~1{id}~1deliveries/get/responses/200"),
        redeliver(
            "RedeliverFirst",
            "$response.body#/items/0/deliveryId",
            "The newest listed delivery, sent again",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .is_match(text)
    }

    #[test]
    fn patterns_agree_with_the_validators() {
        let ns = hookline_core::urn::Namespace::default();
        for urn in [
            "urn:allthings:app:A1:ticket:CAT7:T99",
            "URN:AllThings:app:a.b~c",
        ] {
            assert!(matches(&urn_pattern(false), urn), "{urn}");
            assert!(hookline_core::urn::Urn::parse(urn, &ns).is_ok(), "{urn}");
        }
        for urn in ["urn:allthings:app:A1:*", "urn:allthings:app:A1:x:*"] {
            assert!(matches(&urn_pattern(true), urn), "{urn}");
            assert!(!matches(&urn_pattern(false), urn), "{urn}");
        }
        for bad in [
            "",
            "urn:allthings:app:",
            "urn:other:app:A1",
            "urn:allthings:app:A 1",
        ] {
            assert!(!matches(&urn_pattern(true), bad), "{bad}");
        }
        let secret = hookline_core::signing::Secret::generate()
            .expect("rng")
            .expose();
        assert!(matches(secret_pattern(), &secret), "{secret}");
        let filters = event_type_filters(Catalog::builtin());
        for f in &filters {
            assert!(
                hookline_core::event_type::EventTypeFilter::parse(f, Catalog::builtin()).is_ok(),
                "{f}"
            );
        }
        assert!(filters.contains(&"ticket.*".to_owned()));
    }

    #[test]
    fn every_secret_length_the_validator_takes_matches_and_no_other() {
        use base64::Engine as _;
        for len in 0..=70usize {
            let text = format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(vec![7u8; len])
            );
            let valid = hookline_core::signing::Secret::parse(&text).is_ok();
            assert_eq!(matches(secret_pattern(), &text), valid, "{len} bytes");
        }
    }
}
