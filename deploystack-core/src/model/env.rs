//! A project's environment variables: what a build of each target receives.
//!
//! A variable is a `key` with a `value` for a non-empty set of [`EnvTarget`]s, and a
//! [`EnvVarType`] that says who may read the value back. The repository only ever holds the
//! value sealed (`v1:<key-id>:…`, see [`crate::secrets`]): [`SealedEnvVar`] is the stored
//! form, and the service opens it for a build, for `?decrypt=true` or for a comparison.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{InvalidId, ProjectName, Target};

/// Where a variable applies: the two deployment targets, and local development
/// (`env pull`), which no build on the platform receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EnvTarget {
    /// Builds of production deployments.
    Production,
    /// Builds of preview deployments.
    Preview,
    /// Local development only.
    Development,
}

impl EnvTarget {
    /// The target as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvTarget::Production => "production",
            EnvTarget::Preview => "preview",
            EnvTarget::Development => "development",
        }
    }

    /// The variable target a build of a deployment `target` reads.
    pub fn of_deployment(target: Target) -> Self {
        match target {
            Target::Production => EnvTarget::Production,
            Target::Preview => EnvTarget::Preview,
        }
    }
}

impl fmt::Display for EnvTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may read a value back once it is written. Every type is sealed at rest alike; the
/// type only decides what the API answers and what the build log masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EnvVarType {
    /// Shown in every answer (a public API URL, a feature flag).
    Plain,
    /// Shown only when asked for (`?decrypt=true`); masked in build logs.
    #[default]
    Encrypted,
    /// Never shown again after it is written; masked in build logs.
    Sensitive,
}

impl EnvVarType {
    /// The type as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvVarType::Plain => "plain",
            EnvVarType::Encrypted => "encrypted",
            EnvVarType::Sensitive => "sensitive",
        }
    }

    /// Whether build logs mask values of this type.
    pub fn is_masked(self) -> bool {
        self != EnvVarType::Plain
    }
}

impl fmt::Display for EnvVarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EnvVarType {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(EnvVarType::Plain),
            "encrypted" => Ok(EnvVarType::Encrypted),
            "sensitive" => Ok(EnvVarType::Sensitive),
            _ => Err(InvalidId(
                "a variable type is plain, encrypted or sensitive",
            )),
        }
    }
}

/// The id of a project variable: 16 random bytes as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvVarId([u8; 16]);

impl EnvVarId {
    /// A fresh id from the operating system's random number generator.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl FromStr for EnvVarId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidId("a variable id is 32 lowercase hexadecimal characters");
        if s.len() != 32 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for EnvVarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for EnvVarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvVarId({self})")
    }
}

impl Serialize for EnvVarId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnvVarId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A project variable as the repository stores it: the value sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedEnvVar {
    /// Its id.
    pub id: EnvVarId,
    /// The project it belongs to.
    pub project: ProjectName,
    /// Its name in the build's environment.
    pub key: String,
    /// The value, sealed (`v1:<key-id>:…`); never plaintext.
    pub sealed_value: String,
    /// Where it applies: sorted, without duplicates, never empty.
    pub targets: Vec<EnvTarget>,
    /// Who may read the value back.
    pub kind: EnvVarType,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for SealedEnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedEnvVar")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("key", &self.key)
            .field("targets", &self.targets)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What the service hands the repository to create a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvVar {
    /// Chosen by the caller.
    pub id: EnvVarId,
    /// Its name.
    pub key: String,
    /// The value, sealed.
    pub sealed_value: String,
    /// Where it applies (sorted, deduplicated, non-empty).
    pub targets: Vec<EnvTarget>,
    /// Its type.
    pub kind: EnvVarType,
}

/// What to change of a variable; `None` keeps the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVarUpdate {
    /// A new value, sealed.
    pub sealed_value: Option<String>,
    /// New targets (sorted, deduplicated, non-empty).
    pub targets: Option<Vec<EnvTarget>>,
    /// A new type.
    pub kind: Option<EnvVarType>,
}

/// How many sealed values a rotation (`Repository::reseal_all`) moved to the current key,
/// per place they are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResealCounts {
    /// Values re-encrypted under the current key (or, in deployments' upload-time
    /// variables written before sealing existed, sealed for the first time).
    pub resealed: u64,
    /// Values already sealed under the current key, left as they were.
    pub current: u64,
    /// Values that did not open (a key that is not configured, an altered value); logged with
    /// the reason, left as they were.
    pub failed: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// Project variables.
    pub env_vars: ResealCounts,
    /// Upload-time variables of deployments, counted per value.
    pub build_env: ResealCounts,
}
