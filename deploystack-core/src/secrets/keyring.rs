//! The keys in use: one seals, all open.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use super::{KeyId, SecretKey, SecretsError};

/// The format version every sealed value starts with.
const VERSION: &str = "v1";

/// Bytes of an XChaCha20-Poly1305 nonce.
const NONCE_BYTES: usize = 24;

/// Bytes of the Poly1305 tag after each ciphertext.
const TAG_BYTES: usize = 16;

/// The current key, which seals, and older keys, which only open. Values are picked by the
/// key id they name, so any configured key opens what it sealed. `Debug` shows key ids only.
///
/// ```
/// use deploystack_core::secrets::{Keyring, SecretKey};
///
/// let old = SecretKey::generate();
/// let sealed = Keyring::new(old.clone(), []).seal("s3cr3t-token")?;
///
/// // After a rotation the old key only opens; reseal moves the value to the new key.
/// let keyring = Keyring::new(SecretKey::generate(), [old]);
/// assert_eq!(keyring.open(&sealed)?, "s3cr3t-token");
/// let moved = keyring.reseal(&sealed)?.expect("sealed under the old key");
/// assert_eq!(Keyring::key_id_of(&moved)?, keyring.current_key_id());
/// assert_eq!(keyring.reseal(&moved)?, None);
/// # Ok::<(), deploystack_core::secrets::SecretsError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    /// Seals every new value; first in `keys`.
    current: KeyId,
    /// Every key by id, the current one first.
    keys: Vec<(KeyId, XChaCha20Poly1305)>,
    /// The current key itself, which [`Keyring::derive_key`] derives purpose keys from.
    current_key: SecretKey,
}

impl Keyring {
    /// A keyring that seals with `current` and also opens values sealed with any of
    /// `previous`. A key listed twice counts once.
    pub fn new(current: SecretKey, previous: impl IntoIterator<Item = SecretKey>) -> Self {
        let current_id = current.id();
        let current_key = current.clone();
        let mut keys: Vec<(KeyId, XChaCha20Poly1305)> = Vec::new();
        for key in std::iter::once(current).chain(previous) {
            let id = key.id();
            if keys.iter().all(|(known, _)| *known != id) {
                let cipher = XChaCha20Poly1305::new(&Key::from(*key.bytes()));
                keys.push((id, cipher));
            }
        }
        Self {
            current: current_id,
            keys,
            current_key,
        }
    }

    /// A 256-bit key for one `purpose` (say `"protection cookies"`), derived from the current
    /// key with HMAC-SHA256 over a labelled purpose: every node that shares the platform key
    /// derives the same key, no second secret needs managing, and a key derived for one
    /// purpose reveals nothing about the platform key or another purpose's key. A rotation
    /// of the platform key changes every derived key (what it signed stops verifying).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.current_key.bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"deploystack derived key v1\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> KeyId {
        self.current
    }

    /// The ids of every key this keyring opens with, the current one first.
    pub fn key_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// `plaintext` sealed under the current key with a fresh random nonce:
    /// `v1:<key-id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. Sealing one value twice gives two
    /// different texts.
    pub fn seal(&self, plaintext: &str) -> Result<String, SecretsError> {
        let cipher = &self.keys[0].1;
        let header = header(self.current);
        let nonce = XNonce::generate();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::TooLarge)?;
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        Ok(format!("{header}:{}", URL_SAFE_NO_PAD.encode(body)))
    }

    /// The plaintext of a value [`seal`](Self::seal)ed with any key of this keyring.
    pub fn open(&self, sealed: &str) -> Result<String, SecretsError> {
        let (key_id, body) = split(sealed)?;
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, cipher)| cipher)
            .ok_or(SecretsError::UnknownKeyId { key_id })?;
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretsError::Malformed("short nonce"))?;
        let header = header(key_id);
        let plaintext = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Tampered { key_id })?;
        String::from_utf8(plaintext).map_err(|_| SecretsError::Malformed("the value is not UTF-8"))
    }

    /// Whether `text` has the form of a sealed value (`v1:<key-id>:…`), without opening it.
    /// How readers tell sealed values from plaintext ones written before sealing existed
    /// (upload-time variables of older deployments): a plaintext value of that exact form
    /// would be taken for a sealed one and fail to open, never be shown as something else.
    pub fn is_sealed(text: &str) -> bool {
        text.strip_prefix("v1:")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(key_id, _)| KeyId::parse(key_id).is_some())
    }

    /// The key id a sealed value names, without opening it.
    pub fn key_id_of(sealed: &str) -> Result<KeyId, SecretsError> {
        split(sealed).map(|(id, _)| id)
    }

    /// `sealed` re-encrypted under the current key, or `None` when it already is (nothing
    /// to write). The rotation command runs this over every stored value; running it again
    /// after an interruption only finishes the work (it is idempotent).
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, SecretsError> {
        if Self::key_id_of(sealed)? == self.current {
            return Ok(None);
        }
        self.seal(&self.open(sealed)?).map(Some)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// `v1:<key-id>`, the part of a sealed value before its body, which the AEAD authenticates.
fn header(key_id: KeyId) -> String {
    format!("{VERSION}:{key_id}")
}

/// The key id and the decoded `nonce ‖ ciphertext ‖ tag` of a sealed value.
fn split(sealed: &str) -> Result<(KeyId, Vec<u8>), SecretsError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SecretsError::Malformed("expected v1:<key-id>:<ciphertext>"));
    };
    if version != VERSION {
        return Err(SecretsError::Malformed(
            "unknown format version (expected v1)",
        ));
    }
    let key_id =
        KeyId::parse(key_id).ok_or(SecretsError::Malformed("the key id is not 16 hex digits"))?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SecretsError::Malformed("the ciphertext is not base64url"))?;
    if body.len() < NONCE_BYTES + TAG_BYTES {
        return Err(SecretsError::Tampered { key_id });
    }
    Ok((key_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::key::KEY_BYTES;
    use proptest::prelude::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes([byte; KEY_BYTES])
    }

    #[test]
    fn derived_keys_depend_on_the_current_key_and_the_purpose() {
        let ring = Keyring::new(key(1), [key(2)]);
        assert_eq!(
            ring.derive_key("a"),
            Keyring::new(key(1), []).derive_key("a")
        );
        assert_ne!(ring.derive_key("a"), ring.derive_key("b"));
        assert_ne!(
            ring.derive_key("a"),
            Keyring::new(key(2), [key(1)]).derive_key("a")
        );
        assert_ne!(ring.derive_key("a"), [1; KEY_BYTES]);
    }

    #[test]
    fn a_sealed_value_names_its_key_and_hides_the_plaintext() {
        let ring = Keyring::new(key(1), []);
        let sealed = ring.seal("postgres://user:hunter2@db/app").unwrap();
        assert!(
            sealed.starts_with(&format!("v1:{}:", key(1).id())),
            "{sealed}"
        );
        assert!(!sealed.contains("hunter2"), "{sealed}");
        assert_eq!(Keyring::key_id_of(&sealed).unwrap(), key(1).id());
        assert_eq!(
            ring.open(&sealed).unwrap(),
            "postgres://user:hunter2@db/app"
        );
        assert_ne!(ring.seal("same").unwrap(), ring.seal("same").unwrap());
        assert_eq!(ring.open(&ring.seal("").unwrap()).unwrap(), "");
    }

    #[test]
    fn old_keys_open_and_reseal_moves_values_to_the_current_key() {
        let old = Keyring::new(key(1), []);
        let sealed_old = old.seal("token-1").unwrap();
        let rotated = Keyring::new(key(2), [key(1)]);
        assert_eq!(rotated.current_key_id(), key(2).id());
        assert_eq!(
            rotated.key_ids().collect::<Vec<_>>(),
            [key(2).id(), key(1).id()]
        );
        assert_eq!(rotated.open(&sealed_old).unwrap(), "token-1");

        let resealed = rotated.reseal(&sealed_old).unwrap().unwrap();
        assert_eq!(Keyring::key_id_of(&resealed).unwrap(), key(2).id());
        assert_eq!(rotated.open(&resealed).unwrap(), "token-1");
        assert_eq!(rotated.reseal(&resealed).unwrap(), None);

        // Once the old key is dropped, only resealed values open.
        let new_only = Keyring::new(key(2), []);
        assert_eq!(new_only.open(&resealed).unwrap(), "token-1");
        let err = new_only.open(&sealed_old).unwrap_err();
        assert!(matches!(err, SecretsError::UnknownKeyId { key_id } if key_id == key(1).id()));
        assert!(err.to_string().contains(&key(1).id().to_string()), "{err}");
        assert!(new_only.reseal(&sealed_old).is_err());
    }

    #[test]
    fn sealed_values_are_told_apart_from_plaintext() {
        let ring = Keyring::new(key(1), []);
        assert!(Keyring::is_sealed(&ring.seal("x").unwrap()));
        for plain in [
            "",
            "x",
            "v1:",
            "v1:abc:def",
            "postgres://u:p@h/db",
            "v2:0123456789abcdef:x",
        ] {
            assert!(!Keyring::is_sealed(plain), "{plain}");
        }
    }

    #[test]
    fn a_key_listed_twice_counts_once() {
        let ring = Keyring::new(key(1), [key(2), key(1), key(2)]);
        assert_eq!(ring.key_ids().count(), 2);
        assert!(!format!("{ring:?}").contains(&key(1).to_base64()));
    }

    #[test]
    fn altered_or_malformed_values_are_refused_with_the_reason() {
        let ring = Keyring::new(key(1), []);
        let sealed = ring.seal("value").unwrap();

        // Another byte in the body.
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ring.open(&altered),
            Err(SecretsError::Tampered { .. })
        ));

        // A relabelled header (another version) is not authentic either.
        let relabelled = sealed.replacen("v1:", "v2:", 1);
        assert!(matches!(
            ring.open(&relabelled),
            Err(SecretsError::Malformed(_))
        ));

        for bad in [
            "",
            "plaintext",
            "v1:zz:abc",
            "v1:0123456789abcdef",
            "v1:0123456789abcdef:%%%",
        ] {
            assert!(
                matches!(ring.open(bad), Err(SecretsError::Malformed(_))),
                "{bad}"
            );
        }
        let truncated = format!("{head}:{}", &body[..12]);
        assert!(matches!(
            ring.open(&truncated),
            Err(SecretsError::Tampered { .. })
        ));
    }

    proptest! {
        #[test]
        fn seal_then_open_gives_the_value_back(value in any::<String>(), a in any::<u8>(), b in any::<u8>()) {
            let ring = Keyring::new(key(a), [key(b)]);
            let sealed = ring.seal(&value).unwrap();
            prop_assert_eq!(ring.open(&sealed).unwrap(), value.clone());

            // After a rotation to `b`, the value opens and reseals to `b`.
            let rotated = Keyring::new(key(b), [key(a)]);
            let moved = rotated.reseal(&sealed).unwrap();
            let moved = match moved {
                Some(moved) => moved,
                None => {
                    prop_assert_eq!(a, b);
                    sealed.clone()
                }
            };
            prop_assert_eq!(Keyring::key_id_of(&moved).unwrap(), key(b).id());
            prop_assert_eq!(rotated.open(&moved).unwrap(), value);
        }

        #[test]
        fn no_sealed_value_contains_its_plaintext(value in "[a-zA-Z0-9]{12,64}") {
            let ring = Keyring::new(key(9), []);
            let sealed = ring.seal(&value).unwrap();
            prop_assert!(!sealed.contains(&value));
        }
    }
}
