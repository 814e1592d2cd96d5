//! Secrets at rest and in logs: environment-variable values sealed under a platform key, and
//! the values a build log must never show.
//!
//! - [`SecretKey`] and [`KeyId`]: a 256-bit key and its fingerprint.
//! - [`Keyring`]: the current key (seals) and older keys (only open), picked by the key id a
//!   sealed value names; [`Keyring::reseal`] moves a value to the current key.
//! - [`Keyring::from_config`] (in `key_file`): where the keys come from — the setting
//!   `secret_key`, a key file (`secret_key_file`), or, when neither is given, a key file the
//!   embedded default creates in the data directory.
//! - [`Masker`]: replaces secret values in log lines with [`MASK`].
//!
//! # Threat model
//! Sealing protects values from whoever reads the *database* without the key: a copied
//! SQLite file, a PostgreSQL dump or backup, a replica, an operator browsing rows. Neither the
//! file nor the rows hold a value in plaintext, and a changed ciphertext fails to open instead
//! of decrypting to something else (the AEAD's tag). It does not protect against someone who
//! has the key as well — the key file, the server's environment or its memory: the server
//! must decrypt values to hand them to builds, so whoever runs as the server can read them.
//! Hence the key file's rules: it is created `0600`, a key file that other users may read or
//! write is refused at start (a clear error, never a warning that scrolls past), and it lives
//! apart from the database, so a copy of `deploystack.db` alone reveals nothing. Keep backups
//! of the key apart from backups of the database; losing the key loses every value.
//!
//! Someone who can *write* the database can swap one sealed value for another sealed under the
//! same key; the seal binds a value to its key and format version, not to its row. Write
//! access to the database already lets them change what any deployment serves, so binding
//! rows would not move the line.
//!
//! # Why XChaCha20-Poly1305?
//! An AEAD from RustCrypto (pure Rust, audited, no C toolchain), fast without AES hardware,
//! and with a 24-byte nonce: each value gets a fresh random nonce, and at 192 bits random
//! nonces never collide in practice however many values a key seals. AES-GCM's 12-byte nonce
//! would make random nonces a budget to count (2³² values per key) and a counter a state to
//! keep consistent across nodes.
//!
//! # Why do sealed values name their key?
//! A sealed value reads `v1:<key-id>:<base64url(nonce ‖ ciphertext)>`. Opening picks the key
//! by id, so a value sealed under an old key still opens after the current key changed, a
//! value whose key is gone fails with an error naming the missing key id (not a vague
//! "decryption failed"), and the rotation command can tell which values still need
//! re-encrypting without trying to decrypt them. The key id is a fingerprint of the key
//! (a hash, see [`KeyId`]), so keys need no names and an operator cannot label one wrongly.
//! The header `v1:<key-id>` is the AEAD's associated data: editing it breaks the seal.

mod key;
mod key_file;
mod keyring;
mod masker;

pub use key::{KeyId, SecretKey, SecretText};
pub use key_file::{DEFAULT_KEY_FILE, write_new_key_file};
pub use keyring::Keyring;
pub use masker::{MASK, Masker};

use std::path::PathBuf;

/// What can go wrong with keys and sealed values. Messages never contain a key or a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// A key is not 32 bytes in base64 or hex; `origin` says where it came from (a setting,
    /// or a line of a key file).
    #[error("invalid secret key in {origin}: {reason}")]
    InvalidKey {
        /// The setting or file line.
        origin: String,
        /// What is wrong with it (never the key).
        reason: String,
    },
    /// The key file could not be read or created.
    #[error("cannot {action} the secret key file {path}: {source}")]
    KeyFile {
        /// "read" or "create".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file may be read or written by users other than its owner.
    #[error(
        "the secret key file {path} is accessible to other users (mode {mode:04o}); \
         run `chmod 600 {path}` and start again"
    )]
    KeyFileExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file holds no key.
    #[error(
        "the secret key file {path} holds no key (one base64 or hex key a line, current first)"
    )]
    KeyFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The key settings contradict each other or do not fit the deployment shape.
    #[error("{0}")]
    Misconfigured(String),
    /// A sealed value names a key this keyring does not hold.
    #[error(
        "the value was sealed with key {key_id}, which is not configured; add that key to \
         previous_secret_keys or to the key file to read it"
    )]
    UnknownKeyId {
        /// The key the value names.
        key_id: KeyId,
    },
    /// The text is not a sealed value of a version this build reads.
    #[error("not a sealed value: {0}")]
    Malformed(&'static str),
    /// The value names a configured key but does not open with it: it was altered.
    #[error("the value sealed with key {key_id} does not open: it was altered or truncated")]
    Tampered {
        /// The key it names.
        key_id: KeyId,
    },
    /// The AEAD refused to seal (a value larger than the cipher allows).
    #[error("cannot seal the value: it is too large")]
    TooLarge,
}
