//! URNs that name resources, URN patterns that scope webhooks, and the segment trie that
//! matches one against many.
//!
//! Grammar: `urn:<nid>:app:<appId>(:<segment>)*`. `urn:` and the NID compare
//! case-insensitively (RFC 8141), everything after them case-sensitively. Error messages
//! count colon-separated parts from 0 at `urn`, so in `urn:allthings:app:A1:ti cket` the
//! offending part is "segment 4".

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The namespace used when none is configured (`HOOKLINE_URN_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "allthings";
/// Longest URN or pattern accepted, in bytes.
pub const MAX_URN_BYTES: usize = 1024;
/// Most segments allowed after `app:<appId>`.
pub const MAX_SEGMENTS: usize = 16;
/// Longest segment (and App id), in characters.
pub const MAX_SEGMENT_CHARS: usize = 128;

/// Why a URN or URN pattern was refused; the message says what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrnError {
    /// The input was empty.
    #[error("URN is empty")]
    Empty,
    /// The input is over [`MAX_URN_BYTES`].
    #[error("URN is {len} bytes long, the limit is {MAX_URN_BYTES}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The input does not start with `urn:`.
    #[error("URN must start with \"urn:\"")]
    MissingScheme,
    /// The NID is not the configured namespace.
    #[error("namespace \"{found}\" is not \"{expected}\"")]
    WrongNamespace {
        /// The configured namespace.
        expected: String,
        /// What the input had.
        found: String,
    },
    /// The part after the namespace is not `app:<appId>`.
    #[error("URN must continue with \"app:<appId>\" after the namespace")]
    MissingApp,
    /// An event URN contained the wildcard `*`.
    #[error("segment {index} is \"*\": an event URN names one resource and has no wildcard")]
    WildcardInEventUrn {
        /// Position of the part, counted from 0 at `urn`.
        index: usize,
    },
    /// A pattern used `*` for the App id.
    #[error("the App id is \"*\": a pattern never spans Apps")]
    WildcardApp,
    /// A pattern used `*` somewhere other than as its last segment.
    #[error("segment {index} is \"*\": the wildcard may only be the last segment")]
    WildcardNotLast {
        /// Position of the part, counted from 0 at `urn`.
        index: usize,
    },
    /// A part was empty (`::` or a trailing `:`).
    #[error("segment {index} is empty")]
    EmptySegment {
        /// Position of the part, counted from 0 at `urn`.
        index: usize,
    },
    /// A part held a character outside `[A-Za-z0-9._~-]`.
    #[error("segment {index} \"{segment}\" has {what}")]
    InvalidCharacter {
        /// Position of the part, counted from 0 at `urn`.
        index: usize,
        /// The whole part, as given.
        segment: String,
        /// The offending character described for a person (`a space`, `'%'`).
        what: String,
    },
    /// A part was over [`MAX_SEGMENT_CHARS`].
    #[error("segment {index} is {len} characters long, the limit is {MAX_SEGMENT_CHARS}")]
    SegmentTooLong {
        /// Position of the part, counted from 0 at `urn`.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_SEGMENTS`] segments followed `app:<appId>`.
    #[error("{count} segments follow the App id, the limit is {MAX_SEGMENTS}")]
    TooManySegments {
        /// How many there were.
        count: usize,
    },
    /// A configured namespace is not a valid RFC 8141 NID.
    #[error("namespace \"{0}\" is not a valid NID (2-32 letters, digits or '-', starting with a letter or digit)")]
    InvalidNamespace(String),
}

/// A URN namespace identifier, lower-cased (NIDs compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates an RFC 8141 NID (`allthings`, `example`, ...).
    pub fn new(nid: &str) -> Result<Self, UrnError> {
        let bytes = nid.as_bytes();
        let ok = (2..=32).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
        if ok {
            Ok(Self(nid.to_ascii_lowercase()))
        } else {
            Err(UrnError::InvalidNamespace(nid.to_owned()))
        }
    }

    /// The NID as it is printed (lower case).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self(DEFAULT_NAMESPACE.to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A concrete URN naming one resource, e.g. `urn:allthings:app:A1:ticket:CAT7:T99`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Urn {
    namespace: Namespace,
    app_id: String,
    segments: Vec<String>,
}

/// A webhook filter: a concrete prefix, optionally ending in `*` (`urn:allthings:app:A1:*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrnPattern {
    prefix: Urn,
    wildcard: bool,
}

/// How [`parse_parts`] treats `*`.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Event,
    Pattern,
}

impl Urn {
    /// Parses an event URN in `namespace`; a `*` anywhere is refused.
    pub fn parse(input: &str, namespace: &Namespace) -> Result<Self, UrnError> {
        parse_parts(input, namespace, Kind::Event).map(|(urn, _)| urn)
    }

    /// Parses an event URN in the default namespace.
    pub fn parse_default(input: &str) -> Result<Self, UrnError> {
        Self::parse(input, &Namespace::default())
    }

    /// Parses a URN in whatever namespace it names: for data this deployment stored after
    /// validating it, never for input.
    pub fn parse_stored(input: &str) -> Result<Self, UrnError> {
        let nid = input.split(':').nth(1).unwrap_or_default();
        Self::parse(input, &Namespace::new(nid)?)
    }

    /// The URN for a whole App: `urn:<nid>:app:<appId>`.
    pub fn for_app(namespace: &Namespace, app_id: &str) -> Result<Self, UrnError> {
        if let Some(c) = app_id.chars().find(|c| *c == ':') {
            // Would read as more segments: an App id is one segment.
            return Err(UrnError::InvalidCharacter {
                index: 3,
                segment: app_id.to_owned(),
                what: format!("{c:?}"),
            });
        }
        Self::parse(&format!("urn:{namespace}:app:{app_id}"), namespace)
    }

    /// The namespace (lower case).
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The App this URN belongs to.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The segments after `app:<appId>`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "urn:{}:app:{}", self.namespace, self.app_id)?;
        for segment in &self.segments {
            write!(f, ":{segment}")?;
        }
        Ok(())
    }
}

impl FromStr for Urn {
    type Err = UrnError;
    /// Parses in the default namespace; use [`Urn::parse`] for a configured one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_default(s)
    }
}

impl UrnPattern {
    /// Parses a pattern in `namespace`: a concrete prefix, optionally ending in `:*`.
    pub fn parse(input: &str, namespace: &Namespace) -> Result<Self, UrnError> {
        parse_parts(input, namespace, Kind::Pattern)
            .map(|(prefix, wildcard)| Self { prefix, wildcard })
    }

    /// Parses a pattern in the default namespace.
    pub fn parse_default(input: &str) -> Result<Self, UrnError> {
        Self::parse(input, &Namespace::default())
    }

    /// Parses a pattern in whatever namespace it names: for data this deployment stored
    /// after validating it, never for input.
    pub fn parse_stored(input: &str) -> Result<Self, UrnError> {
        let nid = input.split(':').nth(1).unwrap_or_default();
        Self::parse(input, &Namespace::new(nid)?)
    }

    /// The pattern for everything in an App: `urn:<nid>:app:<appId>:*` (the default filter).
    pub fn whole_app(namespace: &Namespace, app_id: &str) -> Result<Self, UrnError> {
        Urn::for_app(namespace, app_id).map(|prefix| Self {
            prefix,
            wildcard: true,
        })
    }

    /// The App this pattern is scoped to (patterns never span Apps).
    pub fn app_id(&self) -> &str {
        self.prefix.app_id()
    }

    /// The concrete part before any `*`.
    pub fn prefix(&self) -> &Urn {
        &self.prefix
    }

    /// True when the pattern ends in `*` and so covers the prefix and all below it.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// True when `urn` is the prefix itself or, for a wildcard pattern, below it.
    pub fn matches(&self, urn: &Urn) -> bool {
        let p = &self.prefix;
        if p.namespace != urn.namespace || p.app_id != urn.app_id {
            return false;
        }
        if self.wildcard {
            urn.segments.starts_with(&p.segments)
        } else {
            urn.segments == p.segments
        }
    }
}

impl fmt::Display for UrnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if self.wildcard {
            f.write_str(":*")?;
        }
        Ok(())
    }
}

impl FromStr for UrnPattern {
    type Err = UrnError;
    /// Parses in the default namespace; use [`UrnPattern::parse`] for a configured one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_default(s)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        /// Deserializes in the default namespace; deployments with another one parse with
        /// the explicit `parse` at the edge.
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(Urn);
string_serde!(UrnPattern);

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

fn check_part(index: usize, part: &str) -> Result<(), UrnError> {
    if part.is_empty() {
        return Err(UrnError::EmptySegment { index });
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')))
    {
        return Err(UrnError::InvalidCharacter {
            index,
            segment: part.to_owned(),
            what: describe_char(c),
        });
    }
    if part.len() > MAX_SEGMENT_CHARS {
        return Err(UrnError::SegmentTooLong {
            index,
            len: part.len(),
        });
    }
    Ok(())
}

fn parse_parts(input: &str, namespace: &Namespace, kind: Kind) -> Result<(Urn, bool), UrnError> {
    if input.is_empty() {
        return Err(UrnError::Empty);
    }
    if input.len() > MAX_URN_BYTES {
        return Err(UrnError::TooLong { len: input.len() });
    }
    let parts: Vec<&str> = input.split(':').collect();
    if !parts[0].eq_ignore_ascii_case("urn") {
        return Err(UrnError::MissingScheme);
    }
    let nid = parts.get(1).copied().unwrap_or_default();
    if !nid.eq_ignore_ascii_case(namespace.as_str()) {
        return Err(UrnError::WrongNamespace {
            expected: namespace.as_str().to_owned(),
            found: nid.to_owned(),
        });
    }
    if parts.get(2) != Some(&"app") {
        return Err(UrnError::MissingApp);
    }
    let app_id = parts.get(3).copied().unwrap_or_default();
    let mut wildcard = false;
    if app_id == "*" {
        return Err(match kind {
            Kind::Event => UrnError::WildcardInEventUrn { index: 3 },
            Kind::Pattern => UrnError::WildcardApp,
        });
    }
    check_part(3, app_id)?;
    let mut segments = Vec::with_capacity(parts.len().saturating_sub(4));
    let last = parts.len() - 1;
    for (index, part) in parts.iter().enumerate().skip(4) {
        if *part == "*" {
            match kind {
                Kind::Event => return Err(UrnError::WildcardInEventUrn { index }),
                Kind::Pattern if index != last => return Err(UrnError::WildcardNotLast { index }),
                Kind::Pattern => {
                    wildcard = true;
                    continue;
                }
            }
        }
        check_part(index, part)?;
        segments.push((*part).to_owned());
    }
    if segments.len() > MAX_SEGMENTS {
        return Err(UrnError::TooManySegments {
            count: segments.len(),
        });
    }
    let urn = Urn {
        namespace: namespace.clone(),
        app_id: app_id.to_owned(),
        segments,
    };
    Ok((urn, wildcard))
}

/// A segment trie from URN patterns to subscription ids: `matches` walks one path, so its
/// cost depends on the event URN's depth, not on how many patterns are indexed.
#[derive(Debug, Clone)]
pub struct UrnIndex<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    children: HashMap<String, Node<T>>,
    /// Ids whose pattern is exactly this path.
    exact: Vec<T>,
    /// Ids whose pattern is this path followed by `*`.
    subtree: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            exact: Vec::new(),
            subtree: Vec::new(),
        }
    }
}

impl<T> Default for UrnIndex<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Clone + Eq + Hash> UrnIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id` under `pattern`; one id may be added under several patterns.
    pub fn insert(&mut self, pattern: &UrnPattern, id: T) {
        let prefix = pattern.prefix();
        let path = std::iter::once(prefix.namespace.as_str())
            .chain(std::iter::once(prefix.app_id.as_str()))
            .chain(prefix.segments.iter().map(String::as_str));
        let mut node = &mut self.root;
        for key in path {
            node = node.children.entry(key.to_owned()).or_default();
        }
        if pattern.is_wildcard() {
            node.subtree.push(id);
        } else {
            node.exact.push(id);
        }
        self.len += 1;
    }

    /// Number of (pattern, id) pairs inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every id with a pattern matching `urn`, each once, in no particular order.
    pub fn matches(&self, urn: &Urn) -> Vec<&T> {
        let mut found: Vec<&T> = Vec::new();
        let Some(app) = self
            .root
            .children
            .get(urn.namespace.as_str())
            .and_then(|ns| ns.children.get(&urn.app_id))
        else {
            return found;
        };
        let mut node = app;
        found.extend(node.subtree.iter());
        let mut complete = true;
        for segment in &urn.segments {
            match node.children.get(segment) {
                Some(child) => {
                    node = child;
                    found.extend(node.subtree.iter());
                }
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            found.extend(node.exact.iter());
        }
        if found.len() > 1 {
            let mut seen = std::collections::HashSet::with_capacity(found.len());
            found.retain(|id| seen.insert(*id));
        }
        found
    }
}

impl<T: Clone + Eq + Hash> FromIterator<(UrnPattern, T)> for UrnIndex<T> {
    fn from_iter<I: IntoIterator<Item = (UrnPattern, T)>>(iter: I) -> Self {
        let mut index = Self::new();
        for (pattern, id) in iter {
            index.insert(&pattern, id);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> UrnPattern {
        UrnPattern::parse_default(s).expect(s)
    }
    fn urn(s: &str) -> Urn {
        Urn::parse_default(s).expect(s)
    }

    #[test]
    fn error_names_the_segment_and_the_character() {
        let err = Urn::parse_default("urn:allthings:app:A1:ti cket").unwrap_err();
        assert_eq!(err.to_string(), "segment 4 \"ti cket\" has a space");
        let err = Urn::parse_default("urn:allthings:app:A1:tick%20et").unwrap_err();
        assert_eq!(err.to_string(), "segment 4 \"tick%20et\" has '%'");
    }

    #[test]
    fn seed_examples_match_as_the_seeds_use_them() {
        let cases = [
            (
                "urn:allthings:app:A1:*",
                "urn:allthings:app:A1:ticket:CAT7:T99",
                true,
            ),
            ("urn:allthings:app:A1:*", "urn:allthings:app:A1", true),
            (
                "urn:allthings:app:A1:*",
                "urn:allthings:app:A2:ticket:CAT7:T99",
                false,
            ),
            (
                "urn:allthings:app:A1:ticket:CAT7:*",
                "urn:allthings:app:A1:ticket:CAT7:T99",
                true,
            ),
            (
                "urn:allthings:app:A1:ticket:CAT7:*",
                "urn:allthings:app:A1:ticket:CAT8:T1",
                false,
            ),
            (
                "urn:allthings:app:A1:ticket:CAT7:*",
                "urn:allthings:app:A1:booking:B1",
                false,
            ),
            (
                "urn:allthings:app:A2:*",
                "urn:allthings:app:A2:booking:B1",
                true,
            ),
        ];
        for (p, u, expected) in cases {
            assert_eq!(pat(p).matches(&urn(u)), expected, "{p} vs {u}");
        }
    }

    #[test]
    fn index_serves_several_apps_and_dedupes_ids() {
        let index: UrnIndex<&str> = [
            (pat("urn:allthings:app:A1:*"), "whole-a1"),
            (pat("urn:allthings:app:A1:ticket:CAT7:*"), "cat7"),
            (pat("urn:allthings:app:A2:*"), "multi"),
            (pat("urn:allthings:app:A1:ticket:*"), "multi"),
            (pat("urn:allthings:app:A1:ticket:CAT7:T99"), "exact"),
        ]
        .into_iter()
        .collect();
        let mut got = index.matches(&urn("urn:allthings:app:A1:ticket:CAT7:T99"));
        got.sort();
        assert_eq!(got, vec![&"cat7", &"exact", &"multi", &"whole-a1"]);
        let mut got = index.matches(&urn("urn:allthings:app:A2:booking:B1"));
        got.sort();
        assert_eq!(got, vec![&"multi"]);
        assert!(index.matches(&urn("urn:allthings:app:A3:x")).is_empty());
        assert_eq!(index.len(), 5);
    }

    #[test]
    fn other_namespace_is_configurable() {
        let ns = Namespace::new("Example").expect("valid nid");
        let u = Urn::parse("URN:EXAMPLE:app:A1:x", &ns).expect("parses");
        assert_eq!(u.to_string(), "urn:example:app:A1:x");
        assert!(Urn::parse("urn:allthings:app:A1:x", &ns).is_err());
        assert!(Namespace::new("-bad").is_err());
        assert!(Namespace::new("a").is_err());
    }

    #[test]
    fn whole_app_default_pattern() {
        let p = UrnPattern::whole_app(&Namespace::default(), "A1").expect("valid");
        assert_eq!(p.to_string(), "urn:allthings:app:A1:*");
        assert!(UrnPattern::whole_app(&Namespace::default(), "A 1").is_err());
    }
}
