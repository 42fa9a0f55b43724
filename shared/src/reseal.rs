//! Keeping credentials sealed under the active key: which keys a store's webhooks use, and
//! resealing them (after a rotation, or plaintext written before sealing). The same walk for
//! both stores: `hookline serve` runs it on start and in `hookline keys rotate`,
//! `hookline-bootstrap keys` on AWS.

use std::collections::BTreeMap;

use crate::ports::{PortError, WebhookStore};
use crate::sealed::Keyring;

/// What a walk found (before it changed anything) and what it changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// Webhooks read.
    pub webhooks: usize,
    /// Webhooks rewritten (plaintext sealed, or resealed under the active key).
    pub resealed: usize,
    /// Webhooks whose credentials did not open (an altered store); left as they are.
    pub unreadable: Vec<String>,
    /// Webhooks by the key ids their credentials use (`plaintext` for unsealed ones).
    pub by_key: BTreeMap<String, usize>,
}

/// Why a store's credentials cannot be brought under the keys given.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// Values are sealed with keys the keyring does not hold: nothing was rewritten.
    #[error("the store holds credentials sealed with key {}, which the keys given do not include (they hold {}); start with the keys the store was sealed with", .missing.join(", "), .held.join(", "))]
    UnknownKeys {
        /// The key ids the store uses that are missing.
        missing: Vec<String>,
        /// The key ids given.
        held: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Which keys the stored credentials are sealed under; changes nothing.
pub async fn key_usage(store: &dyn WebhookStore) -> Result<KeyUsage, PortError> {
    let mut usage = KeyUsage::default();
    for id in store.ids().await? {
        let Some(webhook) = store.get(&id).await? else {
            continue;
        };
        usage.webhooks += 1;
        for key in webhook.key_ids() {
            *usage
                .by_key
                .entry(key.unwrap_or("plaintext").to_owned())
                .or_default() += 1;
        }
    }
    Ok(usage)
}

/// Seals every plaintext credential and reseals every one not under the active key of
/// `keys`; each rewritten webhook's version moves by one, so caches refresh. Refuses,
/// rewriting nothing, when a credential names a key `keys` lacks. Idempotent: a second run
/// rewrites nothing, and one interrupted resumes where it stopped.
pub async fn reseal(store: &dyn WebhookStore, keys: &Keyring) -> Result<KeyUsage, ResealError> {
    let mut usage = key_usage(store).await?;
    let missing: Vec<String> = usage
        .by_key
        .keys()
        .filter(|id| *id != "plaintext" && !keys.holds(id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ResealError::UnknownKeys {
            missing,
            held: keys.ids().map(ToString::to_string).collect(),
        });
    }
    for id in store.ids().await? {
        let Some(mut webhook) = store.get(&id).await? else {
            continue;
        };
        match webhook.seal(keys) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::error!(webhook_id = %id, error = %e, "credentials do not open; left as stored");
                usage.unreadable.push(id.to_string());
                continue;
            }
        }
        let expected = webhook.version;
        webhook.version += 1;
        match store.update(&webhook, expected).await {
            Ok(()) => usage.resealed += 1,
            // Changed meanwhile: written by the service, so sealed under the active key.
            Err(PortError::VersionConflict { .. } | PortError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(usage)
}
