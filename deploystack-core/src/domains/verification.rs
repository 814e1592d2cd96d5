//! What proves a domain is the project's: a per-domain random token, published as a TXT
//! record at `_deploystack.<domain>`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use super::DomainName;

/// The label in front of a domain under which its verification record lives.
pub const RECORD_PREFIX: &str = "_deploystack";

/// Random bytes in a token: 192 bits, which nobody guesses.
const TOKEN_BYTES: usize = 24;

/// A domain's verification token: 32 characters of base64url (`A–Z a–z 0–9 - _`), safe in
/// URLs, JSON and DNS zone files without quoting. Generated once when the domain is added and
/// stored with it, so the record a user publishes stays valid across re-checks.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VerificationToken(String);

/// A stored token that is not one [`VerificationToken::generate`] makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a verification token is 32 characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct InvalidToken;

impl VerificationToken {
    /// A fresh token from a cryptographically secure generator.
    pub fn generate() -> Self {
        let mut bytes = [0; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token read back from storage.
    pub fn parse(text: &str) -> Result<Self, InvalidToken> {
        let valid = text.len() == TOKEN_BYTES / 3 * 4
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidToken)
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationToken({})", self.0)
    }
}

impl fmt::Display for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for VerificationToken {
    type Error = InvalidToken;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<VerificationToken> for String {
    fn from(token: VerificationToken) -> Self {
        token.0
    }
}

/// The DNS record a user publishes to verify a domain, as the API shows it:
/// `{"type": "TXT", "name": "_deploystack.<domain>", "value": "<token>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Where: `_deploystack.<domain>`.
    pub name: String,
    /// What: the domain's token.
    pub value: String,
}

impl VerificationRecord {
    /// The record that verifies `domain` with `token`.
    pub fn new(domain: &DomainName, token: &VerificationToken) -> Self {
        Self {
            record_type: "TXT".to_owned(),
            name: record_name(domain),
            value: token.as_str().to_owned(),
        }
    }
}

/// `_deploystack.<domain>`: always a valid DNS name, since [`DomainName`] leaves room for
/// the prefix.
pub fn record_name(domain: &DomainName) -> String {
    format!("{RECORD_PREFIX}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_read_back() {
        let a = VerificationToken::generate();
        assert_ne!(a, VerificationToken::generate());
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(VerificationToken::parse(a.as_str()).unwrap(), a);
        assert!(VerificationToken::parse("short").is_err());
        assert!(VerificationToken::parse(&"a+".repeat(16)).is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<VerificationToken>(&json).unwrap(), a);
    }

    #[test]
    fn the_record_is_a_txt_under_the_prefix() {
        let domain = DomainName::parse("www.Example.com").unwrap();
        let token = VerificationToken::generate();
        let record = VerificationRecord::new(&domain, &token);
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({
                "type": "TXT",
                "name": "_deploystack.www.example.com",
                "value": token.as_str(),
            })
        );
        let longest = DomainName::parse(&format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(48)
        ))
        .unwrap();
        assert_eq!(record_name(&longest).len(), 253);
    }
}
