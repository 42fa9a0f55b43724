//! The embedded store's keys: `HOOKLINE_MASTER_KEY` (base64 keys, comma-separated, the first
//! active) or the key file beside the database (`<db>.key`, mode 0600, one base64 key per
//! line, the first active), created on the first start of a store that holds no sealed
//! credential. A store sealed with keys that are not given never starts, and nothing is
//! re-keyed silently: a missing key file is an error once the store has sealed anything.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookline_core::adapters::sqlite::Database;
use hookline_core::reseal::{key_usage, reseal, KeyUsage, ResealError};
use hookline_core::sealed::{decode_key, encode_key, generate_key, KeyId, Keyring, KEY_BYTES};

/// The variable that holds the keys instead of the key file.
pub const MASTER_KEY_VAR: &str = "HOOKLINE_MASTER_KEY";

/// Why the keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file or variable is unreadable or malformed.
    #[error("{0}")]
    Bad(String),
    /// The store's credentials cannot be opened with the keys given.
    #[error(transparent)]
    Reseal(#[from] ResealError),
    /// Reading or writing the key file failed.
    #[error("key file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
}

/// Where the keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `HOOKLINE_MASTER_KEY`.
    Env,
    /// The key file; `created` on this start.
    File {
        /// Its path.
        path: PathBuf,
        /// Whether this start created it.
        created: bool,
    },
}

/// The keys a store opened with, where they came from, and what the start resealed.
#[derive(Debug)]
pub struct LoadedKeys {
    /// The keys.
    pub keyring: Arc<Keyring>,
    /// Their origin.
    pub origin: KeyOrigin,
    /// What the start's reseal found and changed.
    pub usage: KeyUsage,
}

/// The key file of the store at `db`: `<db>.key`.
pub fn key_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |error| KeyError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Parses keys: base64, one per line or comma-separated, `#` comments; the first active.
pub fn parse_keys(text: &str, from: &str) -> Result<Vec<[u8; KEY_BYTES]>, KeyError> {
    let keys = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| decode_key(k).map_err(|e| KeyError::Bad(format!("{from}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Bad(format!("{from} holds no key")));
    }
    Ok(keys)
}

fn keyring(keys: &[[u8; KEY_BYTES]], from: &str) -> Result<Arc<Keyring>, KeyError> {
    Keyring::new(keys)
        .map(Arc::new)
        .ok_or_else(|| KeyError::Bad(format!("{from} holds no usable key")))
}

/// Writes the key file (mode 0600), the first key active.
fn write_key_file(path: &Path, keys: &[[u8; KEY_BYTES]]) -> Result<(), KeyError> {
    let mut text = String::from(
        "# Hookline's keys for the store beside this file: the first seals, every one opens.\n\
         # Without them the store's signing secrets and custom header values cannot be read.\n\
         # Back this file up apart from the database; `hookline keys rotate` adds a key.\n",
    );
    for key in keys {
        text.push_str(&format!("{}  # {}\n", encode_key(key), KeyId::of(key)));
    }
    let tmp = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Keys as read, the active one first, and where they came from.
pub type ReadKeys = (Vec<[u8; KEY_BYTES]>, KeyOrigin);

/// Reads the keys of the store at `db_path`: `master_key` (the variable's value) if given,
/// else the key file.
pub fn read_keys(db_path: &Path, master_key: Option<&str>) -> Result<Option<ReadKeys>, KeyError> {
    if let Some(value) = master_key {
        return Ok(Some((parse_keys(value, MASTER_KEY_VAR)?, KeyOrigin::Env)));
    }
    let path = key_file(db_path);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((
            parse_keys(&text, &path.display().to_string())?,
            KeyOrigin::File {
                path,
                created: false,
            },
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Loads the keys of the store `db` at `db_path` (creating the key file for a store that
/// sealed nothing yet), refuses keys that do not open it, and seals what is not sealed under
/// the active key.
pub async fn load(
    db_path: &Path,
    db: &Database,
    master_key: Option<&str>,
) -> Result<LoadedKeys, KeyError> {
    let (keyring, origin) = match read_keys(db_path, master_key)? {
        Some((keys, origin)) => (keyring(&keys, "the keys")?, origin),
        None => {
            let path = key_file(db_path);
            let usage = key_usage(db).await.map_err(ResealError::from)?;
            let sealed: Vec<&String> = usage.by_key.keys().filter(|k| *k != "plaintext").collect();
            if !sealed.is_empty() {
                return Err(KeyError::Bad(format!(
                    "the key file {} is missing, and the store holds credentials sealed with key {}: restore the key file (or set {MASTER_KEY_VAR}); a new key would not open them",
                    path.display(),
                    sealed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            let key = generate_key().map_err(|e| KeyError::Bad(e.to_string()))?;
            write_key_file(&path, &[key])?;
            (
                keyring(&[key], "the new key")?,
                KeyOrigin::File {
                    path,
                    created: true,
                },
            )
        }
    };
    let usage = reseal(db, &keyring).await?;
    Ok(LoadedKeys {
        keyring,
        origin,
        usage,
    })
}

/// Adds a new active key to the key file of the store at `db_path`; returns its id.
pub fn add_key(db_path: &Path) -> Result<KeyId, KeyError> {
    let path = key_file(db_path);
    let Some((mut keys, KeyOrigin::File { .. })) = read_keys(db_path, None)? else {
        return Err(KeyError::Bad(format!(
            "no key file at {}: start `hookline serve` on the store first",
            path.display()
        )));
    };
    let key = generate_key().map_err(|e| KeyError::Bad(e.to_string()))?;
    keys.insert(0, key);
    write_key_file(&path, &keys)?;
    Ok(KeyId::of(&key))
}

/// Removes key `id` from the key file; refused for the active key. The caller checks that
/// nothing is sealed under it.
pub fn remove_key(db_path: &Path, id: &str) -> Result<(), KeyError> {
    let path = key_file(db_path);
    let Some((keys, _)) = read_keys(db_path, None)? else {
        return Err(KeyError::Bad(format!("no key file at {}", path.display())));
    };
    if keys.first().is_some_and(|k| KeyId::of(k).as_str() == id) {
        return Err(KeyError::Bad(format!(
            "{id} is the active key: rotate first (`hookline keys rotate`), then retire it"
        )));
    }
    let kept: Vec<_> = keys
        .iter()
        .filter(|k| KeyId::of(k).as_str() != id)
        .copied()
        .collect();
    if kept.len() == keys.len() {
        return Err(KeyError::Bad(format!(
            "{} holds no key {id}",
            path.display()
        )));
    }
    write_key_file(&path, &kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_lines_or_commas_with_comments() {
        let a = generate_key().expect("rng");
        let b = generate_key().expect("rng");
        let text = format!("# header\n{}  # k1\n\n{}\n", encode_key(&a), encode_key(&b));
        assert_eq!(parse_keys(&text, "file").expect("parses"), vec![a, b]);
        let env = format!("{},{}", encode_key(&b), encode_key(&a));
        assert_eq!(parse_keys(&env, "var").expect("parses"), vec![b, a]);
        assert!(parse_keys("# nothing\n", "file").is_err());
        assert!(parse_keys("not-base64!", "var")
            .expect_err("bad")
            .to_string()
            .starts_with("var: a key must be base64"));
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            key_file(Path::new("/data/hookline.db")),
            PathBuf::from("/data/hookline.db.key")
        );
    }
}
