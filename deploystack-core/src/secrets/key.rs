//! A platform key, its id, and the setting type that carries keys without printing them.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes in a key (XChaCha20-Poly1305 takes 256-bit keys).
pub const KEY_BYTES: usize = 32;

/// Domain separation for key ids: the fingerprint of a key is never a hash some other part of
/// the system computes over the same bytes.
const KEY_ID_CONTEXT: &[u8] = b"deploystack secret key id v1\0";

/// A 256-bit platform key. `Debug` shows only its id.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_BYTES]);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        use chacha20poly1305::aead::{Generate, Key};
        let key = Key::<chacha20poly1305::XChaCha20Poly1305>::generate();
        let mut bytes = [0; KEY_BYTES];
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// A key written as 64 hex digits or as base64 (standard or URL-safe alphabet, with or
    /// without padding). The error says what is wrong without repeating the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("it is empty".to_owned());
        }
        // 64 hex digits would also decode as base64 (to 48 bytes), so hex is tried first.
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| "it is not valid hex".to_owned())?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| {
                    "it is neither 64 hex digits nor base64; generate one with \
                     `openssl rand -base64 32`"
                        .to_owned()
                })?
        };
        let bytes: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "it decodes to {} bytes; a key is exactly {KEY_BYTES} (`openssl rand -base64 32`)",
                bytes.len()
            )
        })?;
        Ok(Self(bytes))
    }

    /// Its fingerprint.
    pub fn id(&self) -> KeyId {
        let digest = Sha256::new()
            .chain_update(KEY_ID_CONTEXT)
            .chain_update(self.0)
            .finalize();
        let mut id = [0; KeyId::BYTES];
        id.copy_from_slice(&digest[..KeyId::BYTES]);
        KeyId(id)
    }

    /// The key in standard base64, as a key file holds it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Its bytes, for the cipher.
    pub(super) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

/// A key's fingerprint: the first 8 bytes of SHA-256 over a fixed context and the key,
/// written as 16 lowercase hex digits. It names the key in sealed values and in errors.
///
/// Publishing it reveals nothing useful about the key (a 256-bit random key cannot be
/// recovered from a hash), and 64 bits keep accidental collisions among the handful of keys
/// an installation ever has out of reach (below one chance in 10¹⁵ for a hundred keys).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KeyId::BYTES]);

impl KeyId {
    const BYTES: usize = 8;

    /// The id written in a sealed value (16 lowercase hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 2 * Self::BYTES
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut id = [0; Self::BYTES];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A setting that holds a secret (a key): read like a string from the file, the environment
/// or a flag, never printed — `Debug` shows `<redacted>` — so a logged configuration leaks
/// nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    /// The secret itself, for the code that parses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl FromStr for SecretText {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hex_and_every_base64_spelling() {
        let key = SecretKey::from_bytes([7; KEY_BYTES]);
        let spellings = [
            hex::encode([7; KEY_BYTES]),
            hex::encode_upper([7; KEY_BYTES]),
            STANDARD.encode([7; KEY_BYTES]),
            STANDARD_NO_PAD.encode([7; KEY_BYTES]),
            URL_SAFE_NO_PAD.encode([7; KEY_BYTES]),
            format!("  {}\n", STANDARD.encode([7; KEY_BYTES])),
        ];
        for text in spellings {
            assert_eq!(SecretKey::parse(&text).unwrap(), key, "{text}");
        }
    }

    #[test]
    fn a_bad_key_says_why_without_repeating_it() {
        let short = STANDARD.encode([1; 16]);
        let err = SecretKey::parse(&short).unwrap_err();
        assert!(err.contains("16 bytes"), "{err}");
        assert!(!err.contains(&short), "{err}");
        assert!(SecretKey::parse("").unwrap_err().contains("empty"));
        let err = SecretKey::parse("correct horse battery staple").unwrap_err();
        assert!(err.contains("neither"), "{err}");
        assert!(!err.contains("horse"), "{err}");
    }

    #[test]
    fn ids_are_stable_fingerprints_and_debug_hides_keys() {
        let a = SecretKey::from_bytes([1; KEY_BYTES]);
        let b = SecretKey::from_bytes([2; KEY_BYTES]);
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), b.id());
        let id = a.id().to_string();
        assert_eq!(id.len(), 16);
        assert_eq!(KeyId::parse(&id), Some(a.id()));
        assert_eq!(KeyId::parse(&id.to_uppercase()), None);
        assert_eq!(KeyId::parse("abc"), None);
        let printed = format!("{a:?}");
        assert!(printed.contains(&id) && !printed.contains(&a.to_base64()));
        assert_eq!(
            format!("{:?}", SecretText::from("hunter22".to_owned())),
            "<redacted>"
        );
        assert_ne!(SecretKey::generate(), SecretKey::generate());
    }
}
