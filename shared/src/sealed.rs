//! Credentials at rest: signing secrets and custom header values are stored sealed with
//! AES-256-GCM under a key named in every ciphertext, so keys can rotate.
//!
//! A sealed value is `hl1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; its additional
//! data is the field it belongs to (`<webhook id>:secret`, `<webhook id>:header:<name>`), so
//! a ciphertext moved to another webhook or field does not open. A key id is derived from the
//! key itself (`k` + 16 hex digits of SHA-256), so a wrong key is told apart from a tampered
//! value. Where keys come from is the composition's business (a key file, an environment
//! variable, KMS-wrapped data keys); this module only seals and opens.

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Prefix of every sealed value (format version 1).
pub const SEALED_PREFIX: &str = "hl1:";
/// Bytes in a key.
pub const KEY_BYTES: usize = 32;

/// Why a value could not be sealed or opened, or a key not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The value names a key the keyring does not hold.
    #[error("sealed with key {0}, which this deployment's keys do not include")]
    UnknownKey(String),
    /// The key is right but the ciphertext or its field does not authenticate.
    #[error("does not decrypt with key {0}: the stored value was altered or moved")]
    Tampered(String),
    /// Not a sealed value of a known format.
    #[error("is not a sealed value: {0}")]
    Malformed(String),
    /// A key is not base64 of 32 bytes.
    #[error("a key must be base64 of {KEY_BYTES} bytes: {0}")]
    BadKey(String),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Rng,
}

/// A key's id: `k` and 16 hex digits of the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &[u8; KEY_BYTES]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"hookline key id\0")
            .chain_update(key)
            .finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("k{hex}"))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new random key.
pub fn generate_key() -> Result<[u8; KEY_BYTES], SealError> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|_| SealError::Rng)?;
    Ok(key)
}

/// A key's text form (standard base64), as key files and `HOOKLINE_MASTER_KEY` hold it.
pub fn encode_key(key: &[u8; KEY_BYTES]) -> String {
    STANDARD.encode(key)
}

/// Reads a key's text form.
pub fn decode_key(text: &str) -> Result<[u8; KEY_BYTES], SealError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| SealError::BadKey(e.to_string()))?;
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
        .map_err(|_| SealError::BadKey(format!("{} bytes", bytes.len())))
}

/// The keys of a deployment: the first seals, every one opens.
pub struct Keyring {
    keys: Vec<(KeyId, LessSafeKey)>,
    /// Per key, an HMAC key derived from it (`SHA-256("hookline-mac" ‖ key)`): what
    /// [`Keyring::mac`] tags with, never the sealing key itself.
    mac_keys: Vec<[u8; 32]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring of `keys`, the first active; `None` when there are none.
    pub fn new(keys: &[[u8; KEY_BYTES]]) -> Option<Self> {
        let (keys, mac_keys): (Vec<_>, Vec<_>) = keys
            .iter()
            .filter_map(|k| {
                let unbound = UnboundKey::new(&AES_256_GCM, k).ok()?;
                let mac_key: [u8; 32] = Sha256::new()
                    .chain_update(b"hookline-mac")
                    .chain_update(k)
                    .finalize()
                    .into();
                Some(((KeyId::of(k), LessSafeKey::new(unbound)), mac_key))
            })
            .unzip();
        (!keys.is_empty()).then_some(Self { keys, mac_keys })
    }

    /// A keyring of one new random key (in-memory stores, tests).
    pub fn generate() -> Result<Self, SealError> {
        let key = generate_key()?;
        Self::new(&[key]).ok_or(SealError::Rng)
    }

    /// The key that seals.
    pub fn active(&self) -> &KeyId {
        &self.keys[0].0
    }

    /// Every key's id, the active one first.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// Whether it holds the key `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|(k, _)| k.as_str() == id)
    }

    /// An HMAC-SHA256 tag of `data` under the active key's MAC key: values Hookline issues
    /// and checks later without storing them (external ids).
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        Self::tag(&self.mac_keys[0], data)
    }

    /// Whether `tag` is [`Keyring::mac`] of `data` under any of its keys (issued before a
    /// rotation still checks), compared in constant time.
    pub fn verify_mac(&self, data: &[u8], tag: &[u8]) -> bool {
        self.mac_keys.iter().any(|k| {
            let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(k) else {
                return false;
            };
            mac.update(data);
            mac.verify_truncated_left(tag).is_ok()
        })
    }

    fn tag(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
        match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(data);
                mac.finalize().into_bytes().into()
            }
            // HMAC takes a key of any length; this cannot happen.
            Err(_) => [0; 32],
        }
    }

    /// Seals `plaintext` for `field` under the active key.
    pub fn seal(&self, plaintext: &str, field: &str) -> Result<Sealed, SealError> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Rng)?;
        let mut data = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(field.as_bytes()),
            &mut data,
        )
        .map_err(|_| SealError::Rng)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + data.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&data);
        Ok(Sealed(format!(
            "{SEALED_PREFIX}{id}:{}",
            URL_SAFE_NO_PAD.encode(blob)
        )))
    }

    /// Opens a value sealed for `field`.
    pub fn open(&self, sealed: &Sealed, field: &str) -> Result<String, SealError> {
        let (id, blob) = sealed.parts()?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SealError::Tampered(id.to_owned()))?;
        if blob.len() < NONCE_LEN {
            return Err(SealError::Tampered(id.to_owned()));
        }
        let mut data = blob.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&blob)
            .map_err(|_| SealError::Tampered(id.to_owned()))?;
        let plain = key
            .open_in_place(nonce, Aad::from(field.as_bytes()), &mut data)
            .map_err(|_| SealError::Tampered(id.to_owned()))?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Tampered(id.to_owned()))
    }
}

/// A sealed value as stored. Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({})", self.key_id().unwrap_or("?"))
    }
}

impl Sealed {
    /// Accepts a stored value that has the sealed form.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let sealed = Self(text.to_owned());
        sealed.parts()?;
        Ok(sealed)
    }

    fn parts(&self) -> Result<(&str, &str), SealError> {
        self.0
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .filter(|(id, blob)| id.starts_with('k') && !blob.is_empty())
            .ok_or_else(|| SealError::Malformed(format!("expected {SEALED_PREFIX}<key>:<data>")))
    }

    /// The id of the key it is sealed under.
    pub fn key_id(&self) -> Option<&str> {
        self.parts().ok().map(|(id, _)| id)
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A credential in a webhook: plaintext from an input (or a store written before values
/// were sealed) until the service seals it; stores refuse to write plaintext.
#[derive(Clone, PartialEq, Eq)]
pub enum Protected {
    /// Not sealed yet.
    Plain(String),
    /// Sealed.
    Sealed(Sealed),
}

impl fmt::Debug for Protected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(..)"),
            Self::Sealed(s) => s.fmt(f),
        }
    }
}

impl Protected {
    /// Reads a stored value: the sealed form, or plaintext a store held before sealing.
    pub fn stored(text: &str) -> Self {
        if text.starts_with(SEALED_PREFIX) {
            Sealed::parse(text).map_or_else(|_| Self::Plain(text.to_owned()), Self::Sealed)
        } else {
            Self::Plain(text.to_owned())
        }
    }

    /// The plaintext.
    pub fn open(&self, keys: &Keyring, field: &str) -> Result<Cow<'_, str>, SealError> {
        match self {
            Self::Plain(p) => Ok(Cow::Borrowed(p)),
            Self::Sealed(s) => keys.open(s, field).map(Cow::Owned),
        }
    }

    /// Seals it under the active key unless it already is; true when it changed.
    pub fn seal(&mut self, keys: &Keyring, field: &str) -> Result<bool, SealError> {
        if let Self::Sealed(s) = self {
            if s.key_id() == Some(keys.active().as_str()) {
                return Ok(false);
            }
        }
        let plain = self.open(keys, field)?.into_owned();
        *self = Self::Sealed(keys.seal(&plain, field)?);
        Ok(true)
    }

    /// The sealed text a store keeps; `None` while it is plaintext.
    pub fn as_stored(&self) -> Option<&str> {
        match self {
            Self::Plain(_) => None,
            Self::Sealed(s) => Some(s.as_str()),
        }
    }

    /// The key it is sealed under; `None` while it is plaintext.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Plain(_) => None,
            Self::Sealed(s) => s.key_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_for_their_field_only() {
        let keys = Keyring::generate().expect("rng");
        let sealed = keys.seal("whsec_abc", "wh_1:secret").expect("seal");
        assert!(sealed.as_str().starts_with("hl1:k"));
        assert!(!sealed.as_str().contains("whsec_abc"));
        assert_eq!(sealed.key_id(), Some(keys.active().as_str()));
        assert_eq!(
            keys.open(&sealed, "wh_1:secret").expect("open"),
            "whsec_abc"
        );
        assert_eq!(
            keys.open(&sealed, "wh_2:secret"),
            Err(SealError::Tampered(keys.active().to_string()))
        );
        // Two seals of one value differ (fresh nonce each).
        assert_ne!(
            keys.seal("x", "f").expect("seal"),
            keys.seal("x", "f").expect("seal")
        );
    }

    #[test]
    fn a_flipped_character_or_another_key_never_opens() {
        let keys = Keyring::generate().expect("rng");
        let sealed = keys.seal("X-Api-Key value", "f").expect("seal");
        let mut text = sealed.as_str().to_owned();
        let last = text.pop().expect("non-empty");
        text.push(if last == 'A' { 'B' } else { 'A' });
        let flipped = Sealed::parse(&text).expect("still well-formed");
        assert!(matches!(
            keys.open(&flipped, "f"),
            Err(SealError::Tampered(_))
        ));
        let other = Keyring::generate().expect("rng");
        assert!(matches!(
            other.open(&sealed, "f"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn rotation_reseals_under_the_new_key_and_old_values_still_open() {
        let old = generate_key().expect("rng");
        let new = generate_key().expect("rng");
        let before = Keyring::new(&[old]).expect("one key");
        let mut value = Protected::Sealed(before.seal("v", "f").expect("seal"));
        let after = Keyring::new(&[new, old]).expect("two keys");
        assert_eq!(value.open(&after, "f").expect("old opens").as_ref(), "v");
        assert!(value.seal(&after, "f").expect("reseal"));
        assert_eq!(value.key_id(), Some(KeyId::of(&new).as_str()));
        assert!(!value.seal(&after, "f").expect("already"));
        let mut plain = Protected::stored("whsec_legacy");
        assert_eq!(plain.as_stored(), None);
        assert!(plain.seal(&after, "f").expect("seal"));
        assert!(plain.as_stored().is_some());
    }

    #[test]
    fn keys_round_trip_their_text_form_and_ids_are_stable() {
        let key = generate_key().expect("rng");
        assert_eq!(decode_key(&encode_key(&key)).expect("decodes"), key);
        assert_eq!(KeyId::of(&key), KeyId::of(&key));
        assert_eq!(KeyId::of(&key).as_str().len(), 17);
        assert!(matches!(decode_key("c2hvcnQ="), Err(SealError::BadKey(_))));
    }
}
