//! The one reader of settings (`HOOKLINE_*` variables) for every binary: the Lambdas read
//! them from their environment, `hookline serve` through the same parsers as flags. One
//! [`SettingError`] names the variable, its value and what is wrong with it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::urn::Namespace;

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value}: {problem}")]
pub struct SettingError {
    /// The variable.
    pub name: &'static str,
    /// Its value (empty when it is missing).
    pub value: String,
    /// Why it is unusable.
    pub problem: String,
}

/// Parses a yes/no setting: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case; empty is
/// no). `hookline serve`'s flags and every Lambda take the same words.
pub fn parse_flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" | "" => Ok(false),
        _ => Err(format!(
            "{value} is not true or false (or yes/no, on/off, 1/0)"
        )),
    }
}

/// Parses a duration such as `5d`, `90m` or `3s`.
pub fn parse_duration_text(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("{e} (write a duration such as 5d, 90m or 3s)"))
}

/// Parses the duration setting `name` such as `5d`, `90m` or `3s`.
pub fn parse_duration(name: &'static str, value: &str) -> Result<Duration, SettingError> {
    parse_duration_text(value).map_err(|problem| SettingError {
        name,
        value: value.to_owned(),
        problem,
    })
}

/// Parses a URN namespace (the `<nid>` of `urn:<nid>:app:...`).
pub fn parse_namespace(value: &str) -> Result<Namespace, String> {
    Namespace::new(value.trim()).map_err(|e| e.to_string())
}

/// The settings a process was started with: its environment, read once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// This process's environment.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// The given variables only (tests, and compositions that set their own).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// True when `name` is set (to anything).
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// The value of `name`, which must be set and not empty.
    pub fn required(&self, name: &'static str) -> Result<String, SettingError> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.to_owned()),
            _ => Err(SettingError {
                name,
                value: String::new(),
                problem: "is not set".into(),
            }),
        }
    }

    /// Parses `name` with `parse`, `default` when unset.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, SettingError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse(v).map_err(|problem| SettingError {
                name,
                value: v.to_owned(),
                problem,
            }),
        }
    }

    /// A yes/no setting ([`parse_flag`]), `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, SettingError> {
        self.parsed(name, default, parse_flag)
    }

    /// A duration setting ([`parse_duration_text`]), `default` when unset.
    pub fn duration(
        &self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, SettingError> {
        self.parsed(name, default, parse_duration_text)
    }

    /// A whole-number setting, `default` when unset.
    pub fn number<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, SettingError> {
        self.parsed(name, default, |v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{v} is not a whole number"))
        })
    }

    /// `HOOKLINE_URN_NAMESPACE` (default `allthings`).
    pub fn namespace(&self) -> Result<Namespace, SettingError> {
        self.parsed(
            "HOOKLINE_URN_NAMESPACE",
            Namespace::default(),
            parse_namespace,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_the_usual_words_in_any_case() {
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on"] {
            assert_eq!(parse_flag(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "no", "OFF", ""] {
            assert_eq!(parse_flag(no), Ok(false), "{no}");
        }
        assert!(parse_flag("maybe").is_err());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("HOOKLINE_X", "soon"), ("HOOKLINE_N", "-1")]);
        let e = env
            .duration("HOOKLINE_X", Duration::ZERO)
            .expect_err("not a duration");
        assert_eq!((e.name, e.value.as_str()), ("HOOKLINE_X", "soon"));
        assert!(env.number::<u32>("HOOKLINE_N", 0).is_err());
        assert_eq!(env.number::<u32>("HOOKLINE_UNSET", 7), Ok(7));
        assert_eq!(
            env.required("HOOKLINE_UNSET").expect_err("unset").problem,
            "is not set"
        );
    }
}
