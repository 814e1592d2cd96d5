//! The `auth` setting: who may call the API without a token, and which mode applies to the
//! address the server really bound (`local` only on loopback).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// Who may call the API without a token (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Every API call needs a token.
    Required,
    /// Same-site requests from a loopback peer to a loopback host name need none; only
    /// allowed when the server listens on loopback.
    Local,
    /// `local` on a server listening on a network address: the operator says every peer
    /// that can reach it is trusted (a container's published port, behind a proxy that
    /// authenticates).
    LocalUnsafe,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Self::Required),
            "local" => Ok(Self::Local),
            "local-unsafe" => Ok(Self::LocalUnsafe),
            other => Err(format!(
                "unknown auth mode {other:?}; expected required, local or local-unsafe"
            )),
        }
    }
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::Local => "local",
            Self::LocalUnsafe => "local-unsafe",
        })
    }
}

impl Config {
    /// The `auth` mode in effect for a server bound to `bound` (the address it really got).
    /// The default follows the address: `local` on loopback, `required` elsewhere; `local`
    /// on a non-loopback address is refused, since the local rule trusts the peer address
    /// and that trust only holds on loopback (`local-unsafe` says so explicitly).
    pub fn auth_mode(&self, bound: SocketAddr) -> Result<AuthMode, ConfigError> {
        let loopback = bound.ip().to_canonical().is_loopback();
        match self.auth {
            None if loopback => Ok(AuthMode::Local),
            None => Ok(AuthMode::Required),
            Some(AuthMode::Local) if !loopback => Err(ConfigError::Auth(format!(
                "auth = local needs a loopback listen address, and the server listens on \
                 {bound}: create a token (`deploystack-server token create --name NAME \
                 --scope admin`) and keep auth = required, or set auth = local-unsafe if every \
                 peer that can reach {bound} is trusted"
            ))),
            Some(mode) => Ok(mode),
        }
    }
}
