//! API tokens: who may call the API, with which scopes, on which projects.
//!
//! A token's secret is `ds_` followed by 64 lowercase hex characters (256 random bits); only
//! its SHA-256 ([`TokenHash`]) is stored. The secret is shown once, when it is made.
//!
//! # Why SHA-256 and not a slow password hash?
//! Slow hashes (argon2, bcrypt) exist because passwords are guessable: they make each guess
//! of a stolen hash expensive. A token is 256 bits from the operating system's random number
//! generator, so there is nothing to guess: inverting SHA-256 of it is as hard as guessing
//! the token itself. A fast hash also lets the repository find a token by its hash with an
//! index look-up on every request, which a salted slow hash could not.
//!
//! # Why the `ds_` prefix?
//! Secret scanners (GitHub's, gitleaks) recognise a prefixed token in a leaked file, and a
//! person reading a log line can tell a DeployStack token from any other string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{InvalidId, ProjectName};

/// The prefix of every token secret.
pub const TOKEN_PREFIX: &str = "ds_";

/// Longest token name, in bytes.
pub const MAX_TOKEN_NAME: usize = 100;

/// What a token may do. Each scope includes the ones before it: `admin` can do all that
/// `deploy` can, `deploy` all that `read` can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read deployments, projects, logs, domains and variables (sensitive values stay
    /// write-only).
    Read,
    /// Create deployments, cancel and delete them, promote, roll back, and manage the
    /// variables, domains and settings of the token's projects.
    Deploy,
    /// Everything: tokens, and creating and deleting projects.
    Admin,
}

impl Scope {
    /// Its name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            _ => Err(InvalidId("a scope is read, deploy or admin")),
        }
    }
}

/// The id of a token: 16 random bytes as 32 lowercase hex characters. Not a secret: it
/// names the token in listings, in `DELETE /api/v1/tokens/{id}` and in the history.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; 16]);

impl TokenId {
    /// A fresh id from the operating system's random number generator.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl FromStr for TokenId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidId("a token id is 32 lowercase hexadecimal characters");
        if s.len() != 32 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A token's secret, as handed to its owner once. Its `Debug` hides it, so it never
/// reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A fresh secret: the prefix and 256 bits from the operating system's generator.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// The secret's text, to show its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the repository stores and looks tokens up by.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

/// SHA-256 of a token's secret: all the repository keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of what a client presented (any text: a wrong token simply matches no
    /// stored hash).
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    /// Whether two hashes are equal, in time independent of where they differ.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl FromStr for TokenHash {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| InvalidId("a token hash is 64 hexadecimal characters"))?;
        Ok(Self(bytes))
    }
}

/// A token as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id.
    pub id: TokenId,
    /// What its owner called it (`ci`, `alice laptop`): how people tell tokens apart.
    pub name: String,
    /// Its scopes (never empty).
    pub scopes: Vec<Scope>,
    /// The projects it is limited to; `None`: every project.
    pub projects: Option<Vec<ProjectName>>,
    /// The hash of its secret.
    pub hash: TokenHash,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used, to within a minute (updates are throttled); `None`: never.
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiToken {
    /// Its highest scope.
    pub fn scope(&self) -> Option<Scope> {
        self.scopes.iter().copied().max()
    }

    /// Whether it has at least `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scope().is_some_and(|own| own >= scope)
    }

    /// Whether it may act on `project`.
    pub fn allows(&self, project: &ProjectName) -> bool {
        self.projects
            .as_ref()
            .is_none_or(|projects| projects.contains(project))
    }

    /// Whether it is past its expiry at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its id.
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The projects it is limited to; `None`: every project.
    pub projects: Option<Vec<ProjectName>>,
    /// The hash of its secret.
    pub hash: TokenHash,
    /// When it stops working; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_of_a_safe_alphabet() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("ds_"));
        assert_eq!(a.expose().len(), 3 + 64);
        // Word characters only: clients refuse others in a token (the `vercel` CLI rejects
        // any token matching /\W/, see docs/vercel.md).
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')
        );
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn hashes_match_only_their_secret() {
        let secret = TokenSecret::generate();
        assert!(secret.hash().matches(&TokenHash::of(secret.expose())));
        assert!(!secret.hash().matches(&TokenHash::of("ds_other")));
        let text = secret.hash().to_string();
        assert_eq!(text.parse::<TokenHash>().unwrap(), secret.hash());
    }

    #[test]
    fn scopes_include_the_lower_ones() {
        let token = ApiToken {
            id: TokenId::random(),
            name: "ci".into(),
            scopes: vec![Scope::Deploy],
            projects: Some(vec!["site".parse().unwrap()]),
            hash: TokenHash::of("x"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1)),
            last_used_at: None,
        };
        assert!(token.has(Scope::Read) && token.has(Scope::Deploy));
        assert!(!token.has(Scope::Admin));
        assert!(token.allows(&"site".parse().unwrap()));
        assert!(!token.allows(&"other".parse().unwrap()));
        assert!(!token.is_expired(OffsetDateTime::UNIX_EPOCH));
        assert!(token.is_expired(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1)));
    }
}
