//! Where the keys come from: the settings `secret_key`, `secret_key_file` and
//! `previous_secret_keys`, or the key file the embedded default creates.
//!
//! A key file is text: one key a line (base64 or 64 hex digits), the current key first and
//! older keys after it; blank lines and lines starting with `#` are ignored. Keys from
//! `previous_secret_keys` are added after the file's. Rotation is then "put the new key on
//! top", and the old keys stay readable until the rotation command has moved every value.
//!
//! # Why refuse the default key file with a shared database?
//! The default creates a key in *this* node's data directory. Nodes of a cluster would each
//! create their own and could not open each other's values, a failure that would show only
//! later, as values that do not decrypt. So with `postgres://` the key must be given
//! explicitly, the same on every node.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::{Keyring, SecretKey, SecretsError};
use crate::config::Config;

/// Name of the key file the embedded default creates in the data directory.
pub const DEFAULT_KEY_FILE: &str = "secret.key";

/// Largest key file read: a few dozen keys with comments; anything bigger is not a key file.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

impl Keyring {
    /// The keyring the settings describe:
    /// - `secret_key` (`DEPLOYSTACK_SECRET_KEY`): the current key; or
    /// - `secret_key_file`: a key file, which must exist; or
    /// - neither: `<data_dir>/secret.key`, created with a fresh key (mode 0600) on first start
    ///   — refused with a shared (PostgreSQL) database, whose nodes must share one key.
    ///
    /// `previous_secret_keys` add keys that only open. A key file readable or writable by other
    /// users is refused. Logs which key is current and, for a file, where it is.
    pub fn from_config(config: &Config) -> Result<Self, SecretsError> {
        let mut previous = Vec::new();
        for (n, text) in config.previous_secret_keys.iter().enumerate() {
            previous.push(parse(text.expose(), || {
                format!("previous_secret_keys (key {})", n + 1)
            })?);
        }
        let (current, from_file) = match (&config.secret_key, &config.secret_key_file) {
            (Some(_), Some(_)) => {
                return Err(SecretsError::Misconfigured(
                    "both secret_key (DEPLOYSTACK_SECRET_KEY) and secret_key_file \
                     (DEPLOYSTACK_SECRET_KEY_FILE) are set; set one of them"
                        .to_owned(),
                ));
            }
            (Some(text), None) => (parse(text.expose(), || "secret_key".to_owned())?, vec![]),
            (None, Some(path)) => {
                if !path.exists() {
                    return Err(SecretsError::Misconfigured(format!(
                        "the secret key file {} (secret_key_file) does not exist; create it \
                         with `(umask 077; openssl rand -base64 32 > {})`, the same key on \
                         every node",
                        path.display(),
                        path.display()
                    )));
                }
                let mut keys = read_key_file(path)?.into_iter();
                let current = keys
                    .next()
                    .ok_or_else(|| SecretsError::KeyFileEmpty { path: path.clone() })?;
                tracing::info!(path = %path.display(), key_id = %current.id(), "secret key from the key file");
                (current, keys.collect())
            }
            (None, None) => {
                if config.database_url().starts_with("postgres") {
                    return Err(SecretsError::Misconfigured(
                        "a shared database needs a shared secret key: set secret_key \
                         (DEPLOYSTACK_SECRET_KEY) or secret_key_file to the same key on every \
                         node (generate one with `openssl rand -base64 32`)"
                            .to_owned(),
                    ));
                }
                let path = config.data_dir.join(DEFAULT_KEY_FILE);
                let mut keys = load_or_create(&path)?.into_iter();
                let current = keys
                    .next()
                    .ok_or_else(|| SecretsError::KeyFileEmpty { path: path.clone() })?;
                (current, keys.collect())
            }
        };
        let keyring = Keyring::new(current, from_file.into_iter().chain(previous));
        tracing::info!(
            current = %keyring.current_key_id(),
            keys = keyring.key_ids().count(),
            "secrets are sealed with key {}",
            keyring.current_key_id()
        );
        Ok(keyring)
    }
}

/// Write a new key file at `path` holding a fresh key, readable by its owner only; fails if
/// the file exists (a key is never overwritten). Returns the key.
pub fn write_new_key_file(path: &Path) -> Result<SecretKey, SecretsError> {
    let create = |source| SecretsError::KeyFile {
        action: "create",
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(create)?;
    let key = SecretKey::generate();
    // Written whole to a temporary file (created 0600 by tempfile), then linked into place
    // without replacing anything: a process starting at the same moment sees either no file
    // or a complete one, and exactly one key wins.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(create)?;
    let text = format!(
        "# DeployStack secret key (see docs/configuration.md, \"Secrets\").\n\
         # The first key seals new values; keys below it only open older ones.\n\
         # Without this file, stored environment variables cannot be read: back it up,\n\
         # apart from the database.\n\
         {}\n",
        key.to_base64()
    );
    file.write_all(text.as_bytes()).map_err(create)?;
    file.as_file().sync_all().map_err(create)?;
    file.persist_noclobber(path)
        .map_err(|err| create(err.error))?;
    Ok(key)
}

/// The keys of the default key file, created with a fresh key when it does not exist.
fn load_or_create(path: &Path) -> Result<Vec<SecretKey>, SecretsError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            match write_new_key_file(path) {
                Ok(key) => {
                    tracing::info!(
                        path = %path.display(),
                        key_id = %key.id(),
                        "created a new secret key file; back it up apart from the database: \
                         without it, stored environment variables cannot be read"
                    );
                    return Ok(vec![key]);
                }
                // Another process created it first: use theirs.
                Err(SecretsError::KeyFile { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
        }
        Err(source) => {
            return Err(SecretsError::KeyFile {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    }
    tracing::info!(path = %path.display(), "secret key from the key file");
    read_key_file(path)
}

/// Every key of a key file, in order, after checking that only its owner can use it.
fn read_key_file(path: &Path) -> Result<Vec<SecretKey>, SecretsError> {
    let read = |source| SecretsError::KeyFile {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    // The handle's metadata, not the path's: what is checked is what is read.
    let metadata = file.metadata().map_err(read)?;
    if !metadata.is_file() {
        return Err(read(std::io::Error::other("not a regular file")));
    }
    check_private(path, &metadata)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(read)?;
    text.lines()
        .enumerate()
        .map(|(n, line)| (n, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            parse(line, || {
                format!("the key file {}, line {}", path.display(), n + 1)
            })
        })
        .collect()
}

/// Refuse a key file that users other than its owner may read or write.
#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::KeyFileExposed {
            path: PathBuf::from(path),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), SecretsError> {
    Ok(())
}

fn parse(text: &str, origin: impl FnOnce() -> String) -> Result<SecretKey, SecretsError> {
    SecretKey::parse(text).map_err(|reason| SecretsError::InvalidKey {
        origin: origin(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::secrets::SecretText;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_default_creates_a_private_key_file_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = Keyring::from_config(&config(&data)).unwrap();
        let path = data.join(DEFAULT_KEY_FILE);
        assert_eq!(mode(&path), 0o600);
        let sealed = first.seal("value").unwrap();

        let again = Keyring::from_config(&config(&data)).unwrap();
        assert_eq!(again.current_key_id(), first.current_key_id());
        assert_eq!(again.open(&sealed).unwrap(), "value");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#'), "{text}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        write_new_key_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keyring::from_config(&config(dir.path())).unwrap_err();
        assert!(
            matches!(err, SecretsError::KeyFileExposed { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");

        let explicit = Config {
            secret_key_file: Some(path.clone()),
            ..config(dir.path())
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(matches!(
            Keyring::from_config(&explicit),
            Err(SecretsError::KeyFileExposed { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        Keyring::from_config(&explicit).unwrap();
    }

    #[test]
    fn a_key_file_holds_the_current_key_first_then_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let (new, old, older) = (
            SecretKey::generate(),
            SecretKey::generate(),
            SecretKey::generate(),
        );
        let sealed_old = Keyring::new(old.clone(), []).seal("from before").unwrap();
        let sealed_older = Keyring::new(older.clone(), [])
            .seal("from long ago")
            .unwrap();
        std::fs::write(
            &path,
            format!(
                "# rotated in December\n{}\n\n  {}  \n",
                new.to_base64(),
                hex::encode(old.bytes())
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = Config {
            secret_key_file: Some(path.clone()),
            previous_secret_keys: vec![SecretText::from(older.to_base64())],
            ..config(dir.path())
        };
        let ring = Keyring::from_config(&config).unwrap();
        assert_eq!(ring.current_key_id(), new.id());
        assert_eq!(ring.open(&sealed_old).unwrap(), "from before");
        assert_eq!(ring.open(&sealed_older).unwrap(), "from long ago");
        assert!(
            !dir.path().join(DEFAULT_KEY_FILE).exists(),
            "an explicit key file replaces the default"
        );
    }

    #[test]
    fn the_setting_gives_the_key_and_bad_settings_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let config = Config {
            secret_key: Some(SecretText::from(key.to_base64())),
            ..config(dir.path())
        };
        assert_eq!(
            Keyring::from_config(&config).unwrap().current_key_id(),
            key.id()
        );
        assert!(!dir.path().join(DEFAULT_KEY_FILE).exists());

        let bad = Config {
            secret_key: Some(SecretText::from("not-a-key".to_owned())),
            ..config.clone()
        };
        let err = Keyring::from_config(&bad).unwrap_err().to_string();
        assert!(
            err.contains("secret_key") && !err.contains("not-a-key"),
            "{err}"
        );

        let bad = Config {
            previous_secret_keys: vec![SecretText::from(hex::encode([1; 16]))],
            ..config.clone()
        };
        let err = Keyring::from_config(&bad).unwrap_err().to_string();
        assert!(err.contains("previous_secret_keys (key 1)"), "{err}");

        let both = Config {
            secret_key_file: Some(dir.path().join("k")),
            ..config.clone()
        };
        let err = Keyring::from_config(&both).unwrap_err().to_string();
        assert!(err.contains("set one of them"), "{err}");

        let missing = Config {
            secret_key: None,
            secret_key_file: Some(dir.path().join("missing")),
            ..config.clone()
        };
        let err = Keyring::from_config(&missing).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("umask 077"),
            "{err}"
        );

        let shared = Config {
            secret_key: None,
            database_url: Some("postgres://db/app".to_owned()),
            ..config.clone()
        };
        let err = Keyring::from_config(&shared).unwrap_err().to_string();
        assert!(err.contains("every node"), "{err}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# nothing yet\n").unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Keyring::from_config(&Config {
            secret_key: None,
            secret_key_file: Some(empty),
            ..config.clone()
        })
        .unwrap_err();
        assert!(matches!(err, SecretsError::KeyFileEmpty { .. }), "{err}");

        let bad_line = dir.path().join("bad-line");
        std::fs::write(&bad_line, format!("{}\nnope\n", key.to_base64())).unwrap();
        std::fs::set_permissions(&bad_line, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Keyring::from_config(&Config {
            secret_key: None,
            secret_key_file: Some(bad_line),
            ..config
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_new_key_file_never_replaces_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/secret.key");
        let key = write_new_key_file(&path).unwrap();
        let err = write_new_key_file(&path).unwrap_err();
        assert!(
            matches!(&err, SecretsError::KeyFile { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
        );
        assert_eq!(read_key_file(&path).unwrap(), vec![key]);
    }
}
