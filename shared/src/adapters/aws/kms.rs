//! The AWS vault: envelope encryption. The keys that seal credentials are AES-256 data keys
//! made by KMS (`GenerateDataKey`) and kept in the table wrapped by the deployment's KMS key
//! (item `PK=KEYRING SK=KEYRING`: `active` and `keys`, a map from key id to the wrapped key).
//! A function unwraps them with one `Decrypt` each, the first time it needs a key, and keeps
//! them for its container's life; only the api and the deliverer ever ask. The first caller
//! of a new deployment creates the first data key; `hookline-bootstrap keys rotate` adds one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::sync::Mutex;

use crate::ports::{PortError, Vault};
use crate::sealed::{KeyId, Keyring, KEY_BYTES};

/// The keyring item's key (both `PK` and `SK`).
pub const KEYRING_ITEM: &str = "KEYRING";
/// Fewest seconds between two reads of the keyring item caused by unknown key ids.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// A KMS client, or what builds one the first time a key is needed: a Lambda that never
/// opens a credential (ingest) never builds it, and none builds it during init.
#[derive(Clone)]
pub enum KmsClient {
    /// Built already.
    Ready(aws_sdk_kms::Client),
    /// Built from this configuration on first use.
    Lazy(
        Arc<(
            aws_config::SdkConfig,
            std::sync::OnceLock<aws_sdk_kms::Client>,
        )>,
    ),
}

impl KmsClient {
    /// Built from `config` on first use.
    pub fn lazy(config: aws_config::SdkConfig) -> Self {
        Self::Lazy(Arc::new((config, std::sync::OnceLock::new())))
    }

    fn get(&self) -> &aws_sdk_kms::Client {
        match self {
            Self::Ready(c) => c,
            Self::Lazy(l) => l.1.get_or_init(|| aws_sdk_kms::Client::new(&l.0)),
        }
    }
}

impl From<aws_sdk_kms::Client> for KmsClient {
    fn from(c: aws_sdk_kms::Client) -> Self {
        Self::Ready(c)
    }
}

/// KMS-wrapped data keys in the table.
pub struct KmsVault {
    dynamo: aws_sdk_dynamodb::Client,
    kms: KmsClient,
    table: String,
    kms_key_id: Option<String>,
    cached: Mutex<Option<(Arc<Keyring>, Instant)>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(format!("{what}: {e}").into())
}

/// The keyring item as read: the active id, and every wrapped key by id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WrappedKeys {
    /// The key that seals.
    pub active: Option<String>,
    /// Key id → KMS ciphertext of the data key.
    pub keys: HashMap<String, Vec<u8>>,
}

impl KmsVault {
    /// The vault of `table`, wrapping new data keys with `kms_key_id` (`HOOKLINE_KMS_KEY_ID`:
    /// without it, keys can be unwrapped but none created).
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        kms: impl Into<KmsClient>,
        table: &str,
        kms_key_id: Option<String>,
    ) -> Self {
        Self {
            dynamo,
            kms: kms.into(),
            table: table.to_owned(),
            kms_key_id,
            cached: Mutex::new(None),
        }
    }

    /// Reads the keyring item.
    pub async fn read(&self) -> Result<WrappedKeys, PortError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(KEYRING_ITEM.into()))
            .key("SK", AttributeValue::S(KEYRING_ITEM.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "reading the keyring item",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        let Some(item) = out.item else {
            return Ok(WrappedKeys::default());
        };
        let active = item.get("active").and_then(|v| v.as_s().ok()).cloned();
        let mut keys = HashMap::new();
        if let Some(AttributeValue::M(map)) = item.get("keys") {
            for (id, v) in map {
                let blob = v
                    .as_s()
                    .ok()
                    .and_then(|b| STANDARD.decode(b).ok())
                    .ok_or_else(|| PortError::Corrupt(format!("keyring key {id} is not base64")))?;
                keys.insert(id.clone(), blob);
            }
        }
        Ok(WrappedKeys { active, keys })
    }

    /// Unwraps a data key with KMS and checks it is the key its id names.
    async fn unwrap(&self, id: &str, wrapped: &[u8]) -> Result<[u8; KEY_BYTES], PortError> {
        let out = self
            .kms
            .get()
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    &format!("KMS Decrypt of data key {id}"),
                    aws_sdk_kms::error::DisplayErrorContext(e),
                )
            })?;
        let plain = out
            .plaintext
            .ok_or_else(|| PortError::Corrupt(format!("KMS returned no plaintext for {id}")))?;
        let key = <[u8; KEY_BYTES]>::try_from(plain.as_ref())
            .map_err(|_| PortError::Corrupt(format!("data key {id} is not {KEY_BYTES} bytes")))?;
        if KeyId::of(&key).as_str() != id {
            return Err(PortError::Corrupt(format!(
                "data key {id} unwraps to key {}",
                KeyId::of(&key)
            )));
        }
        Ok(key)
    }

    /// A new data key from KMS: its id, plaintext and wrapped form.
    pub async fn generate(&self) -> Result<(KeyId, [u8; KEY_BYTES], Vec<u8>), PortError> {
        let key_id = self.kms_key_id.as_deref().ok_or_else(|| {
            PortError::Unavailable(
                "no data key exists and HOOKLINE_KMS_KEY_ID is not set to make one".into(),
            )
        })?;
        let out = self
            .kms
            .get()
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "KMS GenerateDataKey",
                    aws_sdk_kms::error::DisplayErrorContext(e),
                )
            })?;
        let plain = out
            .plaintext
            .ok_or_else(|| PortError::Corrupt("KMS returned no data key".into()))?;
        let key = <[u8; KEY_BYTES]>::try_from(plain.as_ref())
            .map_err(|_| PortError::Corrupt("KMS data key is not 32 bytes".into()))?;
        let wrapped = out
            .ciphertext_blob
            .ok_or_else(|| PortError::Corrupt("KMS returned no wrapped key".into()))?
            .into_inner();
        Ok((KeyId::of(&key), key, wrapped))
    }

    /// Adds a wrapped key and makes it the active one; with `create`, only if no keyring
    /// exists yet (false: another caller made it first).
    pub async fn add_active(
        &self,
        id: &KeyId,
        wrapped: &[u8],
        create: bool,
    ) -> Result<bool, PortError> {
        let mut update = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(KEYRING_ITEM.into()))
            .key("SK", AttributeValue::S(KEYRING_ITEM.into()));
        update = if create {
            update
                .update_expression("SET active = :id, #keys = :keys")
                .condition_expression("attribute_not_exists(PK)")
                .expression_attribute_values(
                    ":keys",
                    AttributeValue::M(HashMap::from([(
                        id.to_string(),
                        AttributeValue::S(STANDARD.encode(wrapped)),
                    )])),
                )
        } else {
            update
                .update_expression("SET active = :id, #keys.#id = :key")
                .condition_expression("attribute_exists(#keys)")
                .expression_attribute_names("#id", id.as_str())
                .expression_attribute_values(":key", AttributeValue::S(STANDARD.encode(wrapped)))
        };
        let out = update
            .expression_attribute_names("#keys", "keys")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(
                "writing the keyring item",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )),
        }
    }

    /// Removes a key that nothing is sealed under any more (never the active one).
    pub async fn remove(&self, id: &str) -> Result<(), PortError> {
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(KEYRING_ITEM.into()))
            .key("SK", AttributeValue::S(KEYRING_ITEM.into()))
            .update_expression("REMOVE #keys.#id")
            .condition_expression("active <> :id")
            .expression_attribute_names("#keys", "keys")
            .expression_attribute_names("#id", id)
            .expression_attribute_values(":id", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "removing a key from the keyring item",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        *self.cached.lock().await = None;
        Ok(())
    }

    /// Reads the keyring item and unwraps every key, creating the first one if there is none.
    async fn load(&self) -> Result<Arc<Keyring>, PortError> {
        let mut wrapped = self.read().await?;
        if wrapped.keys.is_empty() {
            let (id, _, blob) = self.generate().await?;
            if self.add_active(&id, &blob, true).await? {
                tracing::info!(key_id = %id, "created the deployment's first data key");
            }
            wrapped = self.read().await?;
        }
        let active = wrapped
            .active
            .clone()
            .ok_or_else(|| PortError::Corrupt("the keyring item names no active key".into()))?;
        let mut keys = Vec::with_capacity(wrapped.keys.len());
        let first = wrapped
            .keys
            .get(&active)
            .ok_or_else(|| PortError::Corrupt(format!("the active key {active} is missing")))?;
        keys.push(self.unwrap(&active, first).await?);
        for (id, blob) in &wrapped.keys {
            if *id != active {
                keys.push(self.unwrap(id, blob).await?);
            }
        }
        Keyring::new(&keys)
            .map(Arc::new)
            .ok_or_else(|| PortError::Corrupt("the keyring holds no usable key".into()))
    }
}

#[async_trait]
impl Vault for KmsVault {
    async fn keyring(&self) -> Result<Arc<Keyring>, PortError> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, _)) = cached.as_ref() {
            return Ok(keys.clone());
        }
        let keys = self.load().await?;
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    async fn refresh(&self) -> Result<Arc<Keyring>, PortError> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            if at.elapsed() < REFRESH_EVERY {
                return Ok(keys.clone());
            }
        }
        let keys = self.load().await?;
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}
