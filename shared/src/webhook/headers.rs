//! Custom headers a webhook sends with every delivery: `X-` names of HTTP token characters,
//! visible-ASCII values, no reserved prefixes, at most five.

use std::collections::{BTreeMap, BTreeSet};

use crate::sealed::Protected;
use crate::validation::FieldError;

/// Most custom headers on one webhook.
pub const MAX_CUSTOM_HEADERS: usize = 5;
/// Longest custom header name.
pub const MAX_HEADER_NAME_CHARS: usize = 128;
/// Longest custom header value.
pub const MAX_HEADER_VALUE_CHARS: usize = 512;
/// Header name prefixes a webhook may not set, compared ignoring case.
pub const RESERVED_HEADER_PREFIXES: [&str; 4] =
    ["x-hookline-", "x-amz-", "x-amzn-", "x-forwarded-"];

/// One custom header: an `X-` name of HTTP token characters and a visible-ASCII value,
/// sealed at rest (integrators put API keys in them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHeader {
    /// Header name as given (case kept).
    pub name: String,
    /// Header value: plaintext as validated, sealed before it is stored.
    pub value: Protected,
}

impl CustomHeader {
    /// The field its value is sealed for: `<webhook id>:header:<lowercase name>`.
    pub fn field(&self, webhook_id: &str) -> String {
        format!("{webhook_id}:header:{}", self.name.to_ascii_lowercase())
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Checks one header name; the error says what breaks which rule.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let Some(rest) = name
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("x-"))
        .map(|_| &name[2..])
    else {
        return Err(format!("header \"{name}\" must start with \"X-\""));
    };
    if rest.is_empty() {
        return Err(format!("header \"{name}\" needs a name after \"X-\""));
    }
    if name.chars().count() > MAX_HEADER_NAME_CHARS {
        return Err(format!(
            "header \"{name}\" is longer than {MAX_HEADER_NAME_CHARS} characters"
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(format!(
            "header \"{name}\" contains the forbidden character {c:?}"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(prefix) = RESERVED_HEADER_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        return Err(format!(
            "header \"{name}\" uses the reserved prefix \"{prefix}\""
        ));
    }
    Ok(())
}

/// Checks one header value for the header `name`.
pub fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_HEADER_VALUE_CHARS {
        return Err(format!(
            "value of header \"{name}\" is longer than {MAX_HEADER_VALUE_CHARS} characters"
        ));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        let what = match c {
            '\r' | '\n' => "a line break".to_owned(),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("the non-ASCII character {c:?}"),
        };
        return Err(format!("value of header \"{name}\" contains {what}"));
    }
    Ok(())
}

/// Validates a whole header map: count, names, values, and names unique ignoring case.
/// Returns one error per failing header (field `customHeaders.<name>`).
pub fn validate_custom_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<CustomHeader>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if headers.len() > MAX_CUSTOM_HEADERS {
        errors.push(FieldError::new(
            "customHeaders",
            format!(
                "has {} headers, at most {MAX_CUSTOM_HEADERS} are allowed",
                headers.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let field = format!("customHeaders.{name}");
        if let Err(m) = check_header_name(name) {
            errors.push(FieldError::new(field, m));
            continue;
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            errors.push(FieldError::new(
                field,
                format!("header \"{name}\" is given twice (names ignore case)"),
            ));
            continue;
        }
        if let Err(m) = check_header_value(name, value) {
            errors.push(FieldError::new(field, m));
            continue;
        }
        out.push(CustomHeader {
            name: name.clone(),
            value: Protected::Plain(value.clone()),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
