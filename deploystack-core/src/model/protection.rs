//! Deployment protection: which of a project's hosts ask visitors for a password first.
//!
//! A project's `protection` says which of its addresses are private while it is being
//! reviewed, the way Vercel's "Deployment Protection" and Netlify's "password protection" do:
//!
//! - `none` (the default): every address is public.
//! - `previews`: every deployment's own host (`<id>.<base-domain>`) asks for the password;
//!   production at the project's host (`<project>.<base-domain>`) and at its custom domains
//!   stays public. Production deployments are reviewed at their own hosts like previews.
//! - `all`: every address of the project asks for the password.
//!
//! The password is stored only as an argon2 hash; the bypass secret for automation only as a
//! SHA-256 hash (it is 256 random bits, so a fast hash is enough and nothing can be guessed
//! from it). Neither ever leaves the server: the project document says `password_set`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which addresses of a project ask for the password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProtectionMode {
    /// Nothing is protected.
    #[default]
    None,
    /// Deployment hosts are protected; production at the project's host and custom domains is
    /// not.
    Previews,
    /// Everything is protected.
    All,
}

impl ProtectionMode {
    /// The lowercase name stored in databases and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Previews => "previews",
            Self::All => "all",
        }
    }

    /// Whether a request for one of the project's deployments asks for the password:
    /// `production_host` is true when it arrived at the project's host or a custom domain
    /// (which serve production), false at a deployment's own host or path.
    pub fn covers(self, production_host: bool) -> bool {
        match self {
            Self::None => false,
            Self::Previews => !production_host,
            Self::All => true,
        }
    }
}

impl FromStr for ProtectionMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "previews" => Ok(Self::Previews),
            "all" => Ok(Self::All),
            other => Err(format!("unknown protection mode {other:?}")),
        }
    }
}

impl fmt::Display for ProtectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project's protection as stored. `Debug` hides both hashes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// Which addresses ask for the password.
    pub mode: ProtectionMode,
    /// The password's argon2 hash (PHC string); set whenever `mode` is not `none`.
    pub password_hash: Option<String>,
    /// SHA-256 (hex) of the bypass secret automation sends instead of the password; set
    /// whenever `mode` is not `none`.
    pub bypass_hash: Option<String>,
}

impl Protection {
    /// Whether a password is set.
    pub fn password_set(&self) -> bool {
        self.password_hash.is_some()
    }
}

impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protection")
            .field("mode", &self.mode)
            .field("password_set", &self.password_hash.is_some())
            .field("bypass_set", &self.bypass_hash.is_some())
            .finish()
    }
}

/// Protection as an API caller asks for it: the mode and, unless it is `none`, the password
/// in clear (hashed before it is stored, never kept).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    /// `none`, `previews` or `all`.
    pub mode: ProtectionMode,
    /// Required unless `mode` is `none`: 8 to 256 characters.
    #[serde(default)]
    pub password: Option<String>,
}

impl fmt::Debug for ProtectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectionRequest")
            .field("mode", &self.mode)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_cover_what_they_say() {
        for mode in [
            ProtectionMode::None,
            ProtectionMode::Previews,
            ProtectionMode::All,
        ] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert!(!ProtectionMode::None.covers(false));
        assert!(ProtectionMode::Previews.covers(false));
        assert!(!ProtectionMode::Previews.covers(true));
        assert!(ProtectionMode::All.covers(true));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let stored = Protection {
            mode: ProtectionMode::All,
            password_hash: Some("$argon2id$secret-hash".into()),
            bypass_hash: Some("abcdef".into()),
        };
        let shown = format!("{stored:?}");
        assert!(
            !shown.contains("secret-hash") && !shown.contains("abcdef"),
            "{shown}"
        );
        let request = ProtectionRequest {
            mode: ProtectionMode::All,
            password: Some("hunter2hunter2".into()),
        };
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
