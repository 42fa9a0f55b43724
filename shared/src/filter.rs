//! Payload filters: content patterns over the event envelope, in the form EventBridge users
//! know. A pattern is a JSON object mirroring the envelope (`id`, `type`, `urn`,
//! `timestamp`, `data`); each leaf is an array of matchers, any of which may match:
//!
//! - exact values: `"high"`, `5`, `true`, `null`;
//! - `{"prefix": "ab"}`, `{"suffix": ".pdf"}`, `{"equals-ignore-case": "High"}`;
//! - `{"anything-but": "low"}`, `{"anything-but": ["low", 0]}`, `{"anything-but": {"prefix": "x"}}`
//!   (a missing field never matches it);
//! - `{"numeric": [">", 100]}`, `{"numeric": [">=", 0, "<", 5]}`, `{"numeric": ["=", 3]}`;
//! - `{"exists": true}` / `{"exists": false}`.
//!
//! All keys of an object must match; an array in the event matches when any element does, and
//! an array met on the way down is searched element by element. Matching walks the pattern
//! once, with no regular expressions and nothing that backtracks. Patterns are bounded in
//! bytes, depth and matcher count and checked on save with the path of every bad part.

use std::fmt;

use serde_json::{Map, Value};

use crate::event::Event;
use crate::validation::FieldError;

/// Longest pattern, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting of objects in a pattern (the envelope's top level is 1).
pub const MAX_FILTER_DEPTH: usize = 6;
/// Most matchers in one pattern, over all its leaves.
pub const MAX_FILTER_MATCHERS: usize = 64;
/// Longest string in a matcher, in characters.
pub const MAX_FILTER_STRING_CHARS: usize = 256;
/// The envelope fields a pattern may name at its top level.
pub const ENVELOPE_FIELDS: [&str; 5] = ["id", "type", "urn", "timestamp", "data"];

/// A validated payload filter, compiled for matching; keeps the pattern as given.
#[derive(Clone, PartialEq)]
pub struct Filter {
    source: Value,
    root: Node,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.source)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Every key must match.
    Object(Vec<(String, Node)>),
    /// Any matcher may match.
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Cmp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "<" => Self::Lt,
            "<=" => Self::Le,
            "=" => Self::Eq,
            ">=" => Self::Ge,
            ">" => Self::Gt,
            _ => return None,
        })
    }

    fn holds(self, v: f64, bound: f64) -> bool {
        match self {
            Self::Lt => v < bound,
            Self::Le => v <= bound,
            Self::Eq => v == bound,
            Self::Ge => v >= bound,
            Self::Gt => v > bound,
        }
    }
}

/// Collects what is wrong with a pattern, each under its path (`filter.data.amount[0]`).
struct Checker {
    errors: Vec<FieldError>,
    matchers: usize,
}

impl Checker {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn string(&mut self, path: &str, v: &Value, what: &str) -> Option<String> {
        match v {
            Value::String(s) if s.chars().count() > MAX_FILTER_STRING_CHARS => {
                self.fail(
                    path,
                    format!("{what} is longer than {MAX_FILTER_STRING_CHARS} characters"),
                );
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                self.fail(path, format!("{what} must be a string"));
                None
            }
        }
    }

    fn object(&mut self, path: &str, map: &Map<String, Value>, depth: usize) -> Option<Node> {
        if depth > MAX_FILTER_DEPTH {
            self.fail(path, format!("nests deeper than {MAX_FILTER_DEPTH} levels"));
            return None;
        }
        if map.is_empty() && depth > 1 {
            self.fail(
                path,
                "an empty object matches nothing: name a field, or leave this key out",
            );
            return None;
        }
        let mut fields = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = format!("{path}.{key}");
            if depth == 1 && !ENVELOPE_FIELDS.contains(&key.as_str()) {
                self.fail(
                    &here,
                    format!(
                        "is not a field of the event envelope ({}); payload fields go under \"data\"",
                        ENVELOPE_FIELDS.join(", ")
                    ),
                );
                continue;
            }
            let node = match value {
                Value::Object(inner) => self.object(&here, inner, depth + 1),
                Value::Array(items) => self.leaf(&here, items),
                _ => {
                    self.fail(
                        &here,
                        "must be an array of values to match (e.g. [\"high\"]) or an object of fields",
                    );
                    None
                }
            };
            if let Some(node) = node {
                fields.push((key.clone(), node));
            }
        }
        Some(Node::Object(fields))
    }

    fn leaf(&mut self, path: &str, items: &[Value]) -> Option<Node> {
        if items.is_empty() {
            self.fail(
                path,
                "an empty array matches nothing: list at least one value",
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}[{i}]");
            self.matchers += 1;
            if let Some(m) = self.matcher(&here, item) {
                out.push(m);
            }
        }
        Some(Node::Leaf(out))
    }

    fn matcher(&mut self, path: &str, item: &Value) -> Option<Matcher> {
        match item {
            Value::String(_) => self
                .string(path, item, "the value")
                .map(|s| Matcher::Exact(Value::String(s))),
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {
                Some(Matcher::Exact(item.clone()))
            }
            Value::Number(_) => {
                self.fail(path, "the number is out of range");
                None
            }
            Value::Bool(_) | Value::Null => Some(Matcher::Exact(item.clone())),
            Value::Array(_) => {
                self.fail(path, "arrays do not nest: list the values side by side");
                None
            }
            Value::Object(map) => {
                let mut keys = map.iter();
                let (Some((op, arg)), None) = (keys.next(), keys.next()) else {
                    self.fail(path, "a matcher object has exactly one key (prefix, suffix, equals-ignore-case, anything-but, numeric or exists)");
                    return None;
                };
                let here = format!("{path}.{op}");
                match op.as_str() {
                    "prefix" => self.string(&here, arg, "prefix").map(Matcher::Prefix),
                    "suffix" => self.string(&here, arg, "suffix").map(Matcher::Suffix),
                    "equals-ignore-case" => self
                        .string(&here, arg, "equals-ignore-case")
                        .map(|s| Matcher::EqualsIgnoreCase(s.to_lowercase())),
                    "exists" => match arg {
                        Value::Bool(b) => Some(Matcher::Exists(*b)),
                        _ => {
                            self.fail(&here, "exists takes true or false");
                            None
                        }
                    },
                    "anything-but" => self.anything_but(&here, arg),
                    "numeric" => self.numeric(&here, arg),
                    other => {
                        self.fail(path, format!("\"{other}\" is not a matcher: use prefix, suffix, equals-ignore-case, anything-but, numeric or exists"));
                        None
                    }
                }
            }
        }
    }

    fn anything_but(&mut self, path: &str, arg: &Value) -> Option<Matcher> {
        let scalar = |c: &mut Self, p: &str, v: &Value| match v {
            Value::String(_) => c.string(p, v, "the value").map(Value::String),
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Some(v.clone()),
            _ => {
                c.fail(p, "anything-but takes strings or numbers");
                None
            }
        };
        match arg {
            Value::Array(items) if items.is_empty() => {
                self.fail(path, "list at least one value");
                None
            }
            Value::Array(items) => {
                let before = self.errors.len();
                let values: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| scalar(self, &format!("{path}[{i}]"), v))
                    .collect();
                (self.errors.len() == before).then_some(Matcher::AnythingBut(values))
            }
            Value::Object(map) if map.len() == 1 => {
                let (k, v) = map.iter().next()?;
                let here = format!("{path}.{k}");
                match k.as_str() {
                    "prefix" => self
                        .string(&here, v, "prefix")
                        .map(Matcher::AnythingButPrefix),
                    "suffix" => self
                        .string(&here, v, "suffix")
                        .map(Matcher::AnythingButSuffix),
                    _ => {
                        self.fail(
                            path,
                            "anything-but takes a value, a list, or {\"prefix\"} / {\"suffix\"}",
                        );
                        None
                    }
                }
            }
            _ => scalar(self, path, arg).map(|v| Matcher::AnythingBut(vec![v])),
        }
    }

    fn numeric(&mut self, path: &str, arg: &Value) -> Option<Matcher> {
        const HOW: &str = "numeric takes [op, number] or [lower op, number, upper op, number], ops <, <=, =, >=, >";
        let Value::Array(items) = arg else {
            self.fail(path, HOW);
            return None;
        };
        if items.len() != 2 && items.len() != 4 {
            self.fail(path, HOW);
            return None;
        }
        let mut out = Vec::with_capacity(2);
        for pair in items.chunks(2) {
            let op = pair[0].as_str().and_then(Cmp::parse);
            let n = pair[1].as_f64().filter(|n| n.is_finite());
            match (op, n) {
                (Some(op), Some(n)) => out.push((op, n)),
                _ => {
                    self.fail(path, HOW);
                    return None;
                }
            }
        }
        if let [(lower, lo), (upper, hi)] = out[..] {
            if !matches!(lower, Cmp::Gt | Cmp::Ge) || !matches!(upper, Cmp::Lt | Cmp::Le) {
                self.fail(
                    path,
                    "a range names its lower bound (> or >=) first, then its upper bound (< or <=)",
                );
                return None;
            }
            if lo > hi {
                self.fail(path, format!("the range is empty: {lo} is above {hi}"));
                return None;
            }
        }
        Some(Matcher::Numeric(out))
    }
}

impl Filter {
    /// Checks a pattern; every failure is returned, each under its path below `field`
    /// (e.g. `filter.data.amount[0].numeric`).
    pub fn parse(pattern: &Value, field: &str) -> Result<Self, Vec<FieldError>> {
        let Value::Object(map) = pattern else {
            return Err(vec![FieldError::new(
                field,
                "must be a JSON object over the event envelope, e.g. {\"data\": {\"priority\": [\"high\"]}}",
            )]);
        };
        let bytes = pattern.to_string().len();
        if bytes > MAX_FILTER_BYTES {
            return Err(vec![FieldError::new(
                field,
                format!("is {bytes} bytes as JSON, at most {MAX_FILTER_BYTES} are allowed"),
            )]);
        }
        let mut checker = Checker {
            errors: Vec::new(),
            matchers: 0,
        };
        let root = checker.object(field, map, 1);
        if checker.matchers > MAX_FILTER_MATCHERS {
            checker.fail(
                field,
                format!(
                    "has {} matchers, at most {MAX_FILTER_MATCHERS} are allowed",
                    checker.matchers
                ),
            );
        }
        match root {
            Some(root) if checker.errors.is_empty() => Ok(Self {
                source: pattern.clone(),
                root,
            }),
            _ => Err(checker.errors),
        }
    }

    /// Reads back a pattern this deployment stored after validating it.
    pub fn parse_stored(pattern: &Value) -> Result<Self, String> {
        Self::parse(pattern, "filter").map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &Value {
        &self.source
    }

    /// True when `event` matches the pattern.
    pub fn matches(&self, event: &Event) -> bool {
        let Node::Object(fields) = &self.root else {
            return false;
        };
        fields.iter().all(|(key, node)| {
            let value = match key.as_str() {
                "id" => Field::Str(event.id.as_str()),
                "type" => Field::Str(event.event_type.as_str()),
                "urn" => Field::Owned(event.urn.to_string()),
                "timestamp" => Field::Owned(
                    event
                        .timestamp
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                ),
                "data" => Field::Json(&event.data),
                _ => Field::Missing,
            };
            match (&value, node) {
                (Field::Json(v), node) => node_matches(node, Some(v)),
                (Field::Missing, node) => node_matches(node, None),
                (Field::Str(s), Node::Leaf(ms)) => ms.iter().any(|m| m.matches_str(s)),
                (Field::Owned(s), Node::Leaf(ms)) => ms.iter().any(|m| m.matches_str(s)),
                (_, Node::Object(_)) => false,
            }
        })
    }
}

enum Field<'a> {
    Str(&'a str),
    Owned(String),
    Json(&'a Value),
    Missing,
}

fn node_matches(node: &Node, value: Option<&Value>) -> bool {
    match node {
        Node::Leaf(matchers) => matchers.iter().any(|m| m.matches(value)),
        Node::Object(fields) => match value {
            Some(Value::Object(map)) => fields
                .iter()
                .all(|(key, node)| node_matches(node, map.get(key))),
            // An array of objects on the way down: any element may match the rest.
            Some(Value::Array(items)) => items.iter().any(|item| node_matches(node, Some(item))),
            // Absent below: only `exists: false` leaves can still hold.
            _ => fields.iter().all(|(_, node)| node_matches(node, None)),
        },
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Matcher {
    fn matches(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (Self::Exists(want), v) => *want == v.is_some(),
            (_, None) => false,
            (_, Some(Value::Array(items))) => items.iter().any(|i| self.matches_one(i)),
            (_, Some(v)) => self.matches_one(v),
        }
    }

    fn matches_one(&self, v: &Value) -> bool {
        match (self, v) {
            (Self::Exact(want), v) => numbers_equal(want, v),
            (Self::Numeric(cmps), Value::Number(n)) => n
                .as_f64()
                .is_some_and(|n| cmps.iter().all(|(op, bound)| op.holds(n, *bound))),
            (Self::AnythingBut(values), v @ (Value::String(_) | Value::Number(_))) => {
                !values.iter().any(|x| numbers_equal(x, v))
            }
            (Self::Exists(want), _) => *want,
            (_, Value::String(s)) => self.matches_str(s),
            _ => false,
        }
    }

    fn matches_str(&self, s: &str) -> bool {
        match self {
            Self::Exact(Value::String(want)) => want == s,
            Self::Prefix(p) => s.starts_with(p.as_str()),
            Self::Suffix(p) => s.ends_with(p.as_str()),
            Self::EqualsIgnoreCase(want) => s.to_lowercase() == *want,
            Self::AnythingBut(values) => !values.iter().any(|v| v.as_str() == Some(s)),
            Self::AnythingButPrefix(p) => !s.starts_with(p.as_str()),
            Self::AnythingButSuffix(p) => !s.ends_with(p.as_str()),
            Self::Exists(want) => *want,
            Self::Exact(_) | Self::Numeric(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::IntakeRules;
    use crate::event_type::Catalog;
    use crate::urn::Namespace;
    use serde_json::json;
    use time::OffsetDateTime;

    fn event(data: Value) -> Event {
        let body = json!({"id": "evt_1", "type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": data});
        let rules = IntakeRules {
            namespace: &Namespace::default(),
            catalog: Catalog::builtin(),
        };
        Event::from_intake(
            body.to_string().as_bytes(),
            rules,
            OffsetDateTime::now_utc(),
        )
        .expect("event")
    }

    fn filter(p: Value) -> Filter {
        Filter::parse(&p, "filter").expect("valid pattern")
    }

    fn errors(p: Value) -> Vec<String> {
        Filter::parse(&p, "filter")
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_issue_example_matches_any_listed_value_and_the_numeric_range() {
        let f = filter(
            json!({"data": {"priority": ["high", "urgent"], "amount": [{"numeric": [">", 100]}]}}),
        );
        assert!(f.matches(&event(json!({"priority": "urgent", "amount": 101}))));
        assert!(!f.matches(&event(json!({"priority": "low", "amount": 101}))));
        assert!(!f.matches(&event(json!({"priority": "high", "amount": 100}))));
        assert!(!f.matches(&event(json!({"priority": "high"}))));
    }

    #[test]
    fn each_operator_matches_and_refuses() {
        let cases = [
            (
                json!({"data": {"s": ["a"]}}),
                json!({"s": "a"}),
                json!({"s": "b"}),
            ),
            (
                json!({"data": {"n": [5]}}),
                json!({"n": 5.0}),
                json!({"n": "5"}),
            ),
            (
                json!({"data": {"b": [true]}}),
                json!({"b": true}),
                json!({"b": false}),
            ),
            (
                json!({"data": {"z": [null]}}),
                json!({"z": null}),
                json!({}),
            ),
            (
                json!({"data": {"s": [{"prefix": "ab"}]}}),
                json!({"s": "abc"}),
                json!({"s": "cab"}),
            ),
            (
                json!({"data": {"s": [{"suffix": ".pdf"}]}}),
                json!({"s": "a.pdf"}),
                json!({"s": "pdf.a"}),
            ),
            (
                json!({"data": {"s": [{"equals-ignore-case": "HiGh"}]}}),
                json!({"s": "high"}),
                json!({"s": "higher"}),
            ),
            (
                json!({"data": {"s": [{"anything-but": "low"}]}}),
                json!({"s": "high"}),
                json!({"s": "low"}),
            ),
            (
                json!({"data": {"s": [{"anything-but": ["low", 3]}]}}),
                json!({"s": 4}),
                json!({"s": 3}),
            ),
            (
                json!({"data": {"s": [{"anything-but": {"prefix": "test-"}}]}}),
                json!({"s": "prod"}),
                json!({"s": "test-1"}),
            ),
            (
                json!({"data": {"n": [{"numeric": [">=", 0, "<", 5]}]}}),
                json!({"n": 0}),
                json!({"n": 5}),
            ),
            (
                json!({"data": {"n": [{"numeric": ["=", 3]}]}}),
                json!({"n": 3}),
                json!({"n": 3.5}),
            ),
            (
                json!({"data": {"x": [{"exists": true}]}}),
                json!({"x": null}),
                json!({"y": 1}),
            ),
            (
                json!({"data": {"x": [{"exists": false}]}}),
                json!({"y": 1}),
                json!({"x": 1}),
            ),
            (
                json!({"data": {"tags": ["vip"]}}),
                json!({"tags": ["a", "vip"]}),
                json!({"tags": ["a"]}),
            ),
            (
                json!({"data": {"a": {"b": ["x"]}}}),
                json!({"a": {"b": "x"}}),
                json!({"a": {"b": "y"}}),
            ),
            (
                json!({"data": {"items": {"sku": ["X1"]}}}),
                json!({"items": [{"sku": "A"}, {"sku": "X1"}]}),
                json!({"items": [{"sku": "A"}]}),
            ),
        ];
        for (pattern, yes, no) in cases {
            let f = filter(pattern.clone());
            assert!(
                f.matches(&event(yes.clone())),
                "{pattern} should match {yes}"
            );
            assert!(
                !f.matches(&event(no.clone())),
                "{pattern} should not match {no}"
            );
        }
    }

    #[test]
    fn anything_but_never_matches_a_missing_field() {
        let f = filter(json!({"data": {"s": [{"anything-but": "low"}]}}));
        assert!(!f.matches(&event(json!({}))));
    }

    #[test]
    fn envelope_fields_match_too() {
        let f = filter(
            json!({"type": [{"prefix": "ticket."}], "urn": [{"prefix": "urn:allthings:app:A1:ticket:CAT7:"}]}),
        );
        assert!(f.matches(&event(json!({}))));
        let f = filter(json!({"type": ["booking.created"]}));
        assert!(!f.matches(&event(json!({}))));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_path_of_each_bad_part() {
        assert_eq!(errors(json!([1])), ["filter"]);
        assert_eq!(errors(json!({"payload": {"a": [1]}})), ["filter.payload"]);
        assert_eq!(errors(json!({"data": {"a": "x"}})), ["filter.data.a"]);
        assert_eq!(errors(json!({"data": {"a": []}})), ["filter.data.a"]);
        assert_eq!(
            errors(
                json!({"data": {"a": [{"numeric": [">", "x"]}], "b": [{"regex": ".*"}], "c": [{"prefix": 1}]}})
            ),
            [
                "filter.data.a[0].numeric",
                "filter.data.b[0]",
                "filter.data.c[0].prefix"
            ]
        );
        assert_eq!(
            errors(json!({"data": {"n": [{"numeric": ["<", 5, ">", 1]}]}})),
            ["filter.data.n[0].numeric"]
        );
        assert_eq!(errors(json!({"data": {"n": [[1]]}})), ["filter.data.n[0]"]);
        let deep = json!({"data": {"a": {"b": {"c": {"d": {"e": {"f": ["x"]}}}}}}});
        assert_eq!(errors(deep), ["filter.data.a.b.c.d.e"]);
        let many: Vec<Value> = (0..65).map(|i| json!(i)).collect();
        assert_eq!(errors(json!({"data": {"n": many}})), ["filter"]);
        let long = "x".repeat(5000);
        assert_eq!(errors(json!({"data": {"s": [long]}})), ["filter"]);
    }

    #[test]
    fn an_empty_pattern_matches_everything() {
        assert!(filter(json!({})).matches(&event(json!({"a": 1}))));
    }
}
