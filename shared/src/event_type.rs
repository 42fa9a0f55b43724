//! Event types, the catalog they come from (`shared/event-types.json`) and the filters
//! webhooks subscribe with: `*`, a family `ticket.*`, or one type.

use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// Longest event type name accepted.
pub const MAX_EVENT_TYPE_CHARS: usize = 128;

/// Why an event type or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// The name is not `family.action` in lower-case letters, digits and `-`.
    #[error("\"{0}\" is not an event type name: use lower-case words joined by '.', like \"ticket.created\"")]
    Malformed(String),
    /// The name is well formed but not in the catalog.
    #[error("event type \"{0}\" is not in the catalog (GET /v1/event-types lists them)")]
    Unknown(String),
    /// A `family.*` filter names no family in the catalog.
    #[error("no event type in the catalog starts with \"{0}.\"")]
    UnknownFamily(String),
}

/// A catalog event type name, e.g. `ticket.created`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    /// Parses a name and checks it is in `catalog`.
    pub fn parse(name: &str, catalog: &Catalog) -> Result<Self, EventTypeError> {
        if !is_well_formed(name) {
            return Err(EventTypeError::Malformed(name.to_owned()));
        }
        if catalog.get(name).is_none() {
            return Err(EventTypeError::Unknown(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// Reads back a name this deployment stored (well-formed; the catalog is not consulted).
    pub fn parse_stored(name: &str) -> Result<Self, EventTypeError> {
        if is_well_formed(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(EventTypeError::Malformed(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `.` (`ticket` for `ticket.status-changed`).
    pub fn family(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_word(w: &str) -> bool {
    !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_well_formed(name: &str) -> bool {
    name.len() <= MAX_EVENT_TYPE_CHARS && name.contains('.') && name.split('.').all(is_word)
}

/// What a webhook subscribes to: every type, a family, or one type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventTypeFilter {
    /// `*`: every event type.
    All,
    /// `family.*`: every type whose name starts with `family.`.
    Family(String),
    /// One type.
    Exact(EventType),
}

impl EventTypeFilter {
    /// Parses `*`, `family.*` or a catalog type; a family must exist in the catalog.
    pub fn parse(input: &str, catalog: &Catalog) -> Result<Self, EventTypeError> {
        if input == "*" {
            return Ok(Self::All);
        }
        if let Some(family) = input.strip_suffix(".*") {
            if !is_word(family) {
                return Err(EventTypeError::Malformed(input.to_owned()));
            }
            if !catalog.types().any(|t| t.family() == family) {
                return Err(EventTypeError::UnknownFamily(family.to_owned()));
            }
            return Ok(Self::Family(family.to_owned()));
        }
        EventType::parse(input, catalog).map(Self::Exact)
    }

    /// Parses a filter this deployment stored after validating it: the catalog is not
    /// consulted, so a type removed from it later still reads back.
    pub fn parse_stored(input: &str) -> Result<Self, EventTypeError> {
        if input == "*" {
            return Ok(Self::All);
        }
        if let Some(family) = input.strip_suffix(".*") {
            return if is_word(family) {
                Ok(Self::Family(family.to_owned()))
            } else {
                Err(EventTypeError::Malformed(input.to_owned()))
            };
        }
        if is_well_formed(input) {
            Ok(Self::Exact(EventType(input.to_owned())))
        } else {
            Err(EventTypeError::Malformed(input.to_owned()))
        }
    }

    /// True when some event type would pass both filters.
    pub fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::All, _) | (_, Self::All) => true,
            (Self::Family(a), Self::Family(b)) => a == b,
            (Self::Family(f), Self::Exact(t)) | (Self::Exact(t), Self::Family(f)) => {
                t.family() == f
            }
            (Self::Exact(a), Self::Exact(b)) => a == b,
        }
    }

    /// True when an event of type `event_type` is wanted.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::All => true,
            Self::Family(family) => event_type.family() == family,
            Self::Exact(t) => t == event_type,
        }
    }
}

impl fmt::Display for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Family(family) => write!(f, "{family}.*"),
            Self::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

impl Serialize for EventTypeFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One catalog entry, as served by `GET /v1/event-types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EventType))]
#[serde(deny_unknown_fields)]
pub struct EventTypeInfo {
    /// The type name.
    pub name: String,
    /// What happened, for a person reading the catalog.
    pub description: String,
    /// An example `data` payload.
    pub example: serde_json::Value,
}

/// The set of event types an App may emit and a webhook may subscribe to.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    entries: Vec<EventTypeInfo>,
}

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Not a JSON array of entries.
    #[error("catalog is not a JSON array of {{name, description, example}}: {0}")]
    Json(#[from] serde_json::Error),
    /// An entry's name is malformed.
    #[error("catalog entry \"{0}\" is not a valid event type name")]
    BadName(String),
    /// A name appears twice.
    #[error("catalog entry \"{0}\" appears twice")]
    Duplicate(String),
}

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    Catalog::from_json(include_str!("../event-types.json"))
        .expect("shared/event-types.json is a valid catalog (test builtin_catalog_is_valid)")
});

impl Catalog {
    /// Parses a catalog file: a JSON array of `{name, description, example}`.
    pub fn from_json(json: &str) -> Result<Self, CatalogError> {
        let entries: Vec<EventTypeInfo> = serde_json::from_str(json)?;
        let mut seen = std::collections::HashSet::new();
        for entry in &entries {
            if !is_well_formed(&entry.name) {
                return Err(CatalogError::BadName(entry.name.clone()));
            }
            if !seen.insert(entry.name.as_str()) {
                return Err(CatalogError::Duplicate(entry.name.clone()));
            }
        }
        Ok(Self { entries })
    }

    /// The catalog shipped in `shared/event-types.json`, parsed once.
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    /// The entry for `name`, if the catalog has it.
    pub fn get(&self, name: &str) -> Option<&EventTypeInfo> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[EventTypeInfo] {
        &self.entries
    }

    /// All types, in file order.
    pub fn types(&self) -> impl Iterator<Item = EventType> + '_ {
        self.entries.iter().map(|e| EventType(e.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid() {
        let catalog = Catalog::from_json(include_str!("../event-types.json")).expect("valid");
        let names: Vec<_> = catalog.entries().iter().map(|e| e.name.as_str()).collect();
        for seed in [
            "ticket.created",
            "ticket.updated",
            "ticket.commented",
            "ticket.status-changed",
            "booking.created",
            "booking.updated",
            "booking.cancelled",
            "registration-code.created",
            "user.registered",
            "webhook.test",
        ] {
            assert!(names.contains(&seed), "{seed} missing from the catalog");
        }
        assert_eq!(Catalog::builtin(), &catalog);
    }

    #[test]
    fn catalog_refuses_duplicates_and_bad_names() {
        let dup = r#"[{"name":"a.b","description":"","example":{}},{"name":"a.b","description":"","example":{}}]"#;
        assert!(matches!(
            Catalog::from_json(dup),
            Err(CatalogError::Duplicate(_))
        ));
        let bad = r#"[{"name":"Nope","description":"","example":{}}]"#;
        assert!(matches!(
            Catalog::from_json(bad),
            Err(CatalogError::BadName(_))
        ));
        let extra = r#"[{"name":"a.b","description":"","example":{},"x":1}]"#;
        assert!(matches!(
            Catalog::from_json(extra),
            Err(CatalogError::Json(_))
        ));
    }

    #[test]
    fn filters_parse_and_match() {
        let c = Catalog::builtin();
        let created = EventType::parse("ticket.created", c).expect("in catalog");
        let booked = EventType::parse("booking.created", c).expect("in catalog");
        let all = EventTypeFilter::parse("*", c).expect("valid");
        let tickets = EventTypeFilter::parse("ticket.*", c).expect("valid");
        let exact = EventTypeFilter::parse("ticket.created", c).expect("valid");
        assert!(all.matches(&booked));
        assert!(tickets.matches(&created) && !tickets.matches(&booked));
        assert!(exact.matches(&created) && !exact.matches(&booked));
        assert_eq!(tickets.to_string(), "ticket.*");
        let bookings = EventTypeFilter::parse("booking.*", c).expect("valid");
        assert!(all.overlaps(&bookings) && tickets.overlaps(&exact) && exact.overlaps(&tickets));
        assert!(!tickets.overlaps(&bookings) && !bookings.overlaps(&exact));
    }

    #[test]
    fn filters_refuse_what_the_catalog_lacks() {
        let c = Catalog::builtin();
        assert_eq!(
            EventTypeFilter::parse("ticket.deleted", c),
            Err(EventTypeError::Unknown("ticket.deleted".into()))
        );
        assert_eq!(
            EventTypeFilter::parse("invoice.*", c),
            Err(EventTypeError::UnknownFamily("invoice".into()))
        );
        for bad in [
            "Ticket.created",
            "ticket",
            "ticket..created",
            "ticket.*.x",
            "*.created",
            "",
        ] {
            assert!(EventTypeFilter::parse(bad, c).is_err(), "{bad}");
        }
    }
}
