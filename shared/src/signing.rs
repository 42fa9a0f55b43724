//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256("id.timestamp.body")>`,
//! one entry per active secret, and `whsec_` secrets drawn from the OS RNG.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of every secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest secret bytes accepted.
pub const MIN_SECRET_BYTES: usize = 24;
/// Most secret bytes accepted.
pub const MAX_SECRET_BYTES: usize = 64;
/// Bytes in a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Default window within which a receiver accepts a timestamp (Standard Webhooks: 5 min).
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

type HmacSha256 = Hmac<Sha256>;

/// Why signing or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// Not `whsec_` followed by base64 of 24–64 bytes.
    #[error("secret must be \"whsec_\" followed by base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")]
    MalformedSecret,
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    /// The timestamp is outside the tolerance window.
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    TimestampOutOfTolerance {
        /// The message's timestamp.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The allowed distance.
        tolerance_secs: i64,
    },
    /// No `v1` signature in the header matches any given secret.
    #[error("no signature matches")]
    NoMatch,
}

/// A signing secret. Its `Debug` never shows the key; only [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// A new secret of [`GENERATED_SECRET_BYTES`] from the OS RNG.
    pub fn generate() -> Result<Self, SigningError> {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|e| SigningError::Rng(e.to_string()))?;
        Ok(Self { key })
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SigningError> {
        let b64 = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::MalformedSecret)?;
        let key = BASE64
            .decode(b64)
            .map_err(|_| SigningError::MalformedSecret)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SigningError::MalformedSecret);
        }
        Ok(Self { key })
    }

    /// The `whsec_` text form: shown to the user once, stored, never logged.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64 signature>` of one message under this secret.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_***)")
    }
}

/// The `webhook-signature` header value: one `v1,` entry per active secret, space-separated.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a message as a receiver would: the timestamp within `tolerance_secs` of `now`,
/// and at least one `v1` entry of `header` matching one of `secrets` (compared in constant time).
pub fn verify(
    secrets: &[Secret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SigningError> {
    if (now - timestamp).abs() > tolerance_secs {
        return Err(SigningError::TimestampOutOfTolerance {
            timestamp,
            now,
            tolerance_secs,
        });
    }
    let candidates: Vec<Vec<u8>> = header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    let matched = secrets.iter().any(|secret| {
        candidates.iter().any(|sig| {
            secret
                .mac(msg_id, timestamp, body)
                .verify_slice(sig)
                .is_ok()
        })
    });
    if matched {
        Ok(())
    } else {
        Err(SigningError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn design_test_vector() {
        let s = Secret::parse(SECRET).expect("valid");
        assert_eq!(
            s.sign(ID, TS, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(s.expose(), SECRET);
    }

    #[test]
    fn verification_checks_signature_and_tolerance() {
        let s = Secret::parse(SECRET).expect("valid");
        let header = s.sign(ID, TS, BODY);
        let ok = verify(
            std::slice::from_ref(&s),
            ID,
            TS,
            BODY,
            &header,
            TS + 10,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(ok, Ok(()));
        let late = verify(
            std::slice::from_ref(&s),
            ID,
            TS,
            BODY,
            &header,
            TS + 301,
            DEFAULT_TOLERANCE_SECS,
        );
        assert!(matches!(
            late,
            Err(SigningError::TimestampOutOfTolerance { .. })
        ));
        let early = verify(
            std::slice::from_ref(&s),
            ID,
            TS,
            BODY,
            &header,
            TS - 301,
            DEFAULT_TOLERANCE_SECS,
        );
        assert!(matches!(
            early,
            Err(SigningError::TimestampOutOfTolerance { .. })
        ));
        let tampered = verify(
            std::slice::from_ref(&s),
            ID,
            TS,
            b"{}",
            &header,
            TS,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(tampered, Err(SigningError::NoMatch));
        let other_id = verify(
            std::slice::from_ref(&s),
            "msg_other",
            TS,
            BODY,
            &header,
            TS,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(other_id, Err(SigningError::NoMatch));
    }

    #[test]
    fn several_active_secrets_sign_and_either_verifies() {
        let old = Secret::parse(SECRET).expect("valid");
        let new = Secret::generate().expect("rng");
        let header = signature_header(&[new.clone(), old.clone()], ID, TS, BODY);
        let entries: Vec<_> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.starts_with("v1,")));
        for receiver_knows in [&old, &new] {
            let r = verify(
                std::slice::from_ref(receiver_knows),
                ID,
                TS,
                BODY,
                &header,
                TS,
                300,
            );
            assert_eq!(r, Ok(()));
        }
        let stranger = Secret::generate().expect("rng");
        assert_eq!(
            verify(&[stranger], ID, TS, BODY, &header, TS, 300),
            Err(SigningError::NoMatch)
        );
    }

    #[test]
    fn generated_secrets_are_distinct_and_round_trip() {
        let a = Secret::generate().expect("rng");
        let b = Secret::generate().expect("rng");
        assert_ne!(a, b);
        assert_eq!(Secret::parse(&a.expose()).expect("round trip"), a);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(format!("{a:?}"), "Secret(whsec_***)");
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", BASE64.encode([0u8; 65])),
        ] {
            assert_eq!(
                Secret::parse(bad),
                Err(SigningError::MalformedSecret),
                "{bad}"
            );
        }
    }
}
