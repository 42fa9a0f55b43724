//! What the handlers take from a request: JSON bodies (415, 413, 400 named), `If-Match`, the
//! query string.

use super::*;

pub(crate) fn is_json(headers: &HeaderMap) -> Result<(), Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = ct.map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(e) if e.starts_with("application/") && e.ends_with("+json") => Ok(()),
        _ => Err(Problem::unsupported_media_type(ct)),
    }
}

/// A JSON request body: 415 unless it says JSON, 413 over [`MAX_BODY_BYTES`], the raw bytes.
pub(crate) struct JsonBytes(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        is_json(request.headers())?;
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::too_large(MAX_BODY_BYTES)
                } else {
                    Problem::bad_request(format!("the body could not be read: {e}"))
                }
            })
    }
}

/// A JSON request body parsed into `T`, unknown fields refused (400 naming what is wrong).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let JsonBytes(body) = JsonBytes::from_request(request, state).await?;
        serde_json::from_slice(&body).map(Self).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "the body does not match the schema",
                serde_json::error::Category::Eof => "the body ends too early",
                _ => "the body is not valid JSON",
            };
            Problem::bad_request(format!("{what}: {e}"))
        })
    }
}

pub(crate) fn parse_if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::bad_request("If-Match is not text"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    // Exactly what the document's IF_MATCH_PATTERN says: N, "N" or W/"N", N of 1–19 digits.
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let digits = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(if text.starts_with("W/") { "" } else { tag });
    if (1..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<u64>().map(Some).map_err(|_| bad_tag(text))
    } else {
        Err(bad_tag(text))
    }
}

fn bad_tag(text: &str) -> Problem {
    Problem::bad_request(format!(
        "If-Match {text} is not an ETag this API returned (\"N\", W/\"N\" or *)"
    ))
}

/// What `If-Match` may hold, as the document states it.
pub(crate) const IF_MATCH_PATTERN: &str = r#"^(\*|[0-9]{1,19}|"[0-9]{1,19}"|W/"[0-9]{1,19}")$"#;

/// The query string's parameters (the last of a repeated name wins).
pub(crate) struct Query(pub(crate) BTreeMap<String, String>);

impl Query {
    pub(crate) fn of(raw: Option<String>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn limit(&self) -> Result<Option<usize>, Problem> {
        self.get("limit")
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| Problem::bad_request(format!("limit \"{l}\" is not a number")))
            })
            .transpose()
    }
}
