//! Looking a domain's verification record up in DNS.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use super::verification::record_name;
use super::{DomainName, VerificationToken};
use crate::config::Config;

/// What a look-up of a domain's verification record found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// A TXT record at `_deploystack.<domain>` holds the token.
    Verified,
    /// There is no TXT record at `_deploystack.<domain>` (or no such name at all).
    Missing,
    /// TXT records exist there, none with the token; these are their values.
    OtherValue {
        /// What the records hold (public data: anyone can query it).
        found: Vec<String>,
    },
    /// The name servers could not be asked or did not answer (timeout, refused, SERVFAIL):
    /// says nothing about the record, so a re-check should follow.
    LookupFailed {
        /// What went wrong.
        reason: String,
    },
}

impl VerifyOutcome {
    /// Whether the domain is verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified)
    }

    /// A stable machine-readable name of the outcome, for API answers and events:
    /// `verified`, `record_missing`, `other_value` or `lookup_failed`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Missing => "record_missing",
            Self::OtherValue { .. } => "other_value",
            Self::LookupFailed { .. } => "lookup_failed",
        }
    }

    /// A sentence for the user saying what to do next.
    pub fn explain(&self, domain: &DomainName, token: &VerificationToken) -> String {
        let name = record_name(domain);
        match self {
            Self::Verified => format!("{domain} is verified"),
            Self::Missing => format!(
                "no TXT record at {name}; add one with the value {token} (DNS changes can take \
                 a while to show; it is checked again automatically)"
            ),
            Self::OtherValue { found } => format!(
                "the TXT record at {name} holds {found:?}, not {token}; change it to {token}"
            ),
            Self::LookupFailed { reason } => {
                format!("could not look up {name}: {reason}; it is checked again automatically")
            }
        }
    }
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// No `dns_servers` were configured and the system's resolver configuration could not be
    /// read.
    #[error(
        "cannot read the system's DNS configuration ({0}); set dns_servers \
         (DEPLOYSTACK_DNS_SERVERS) to name servers as ip:port"
    )]
    SystemConfig(String),
    /// The resolver refused its configuration.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Looks verification records up with hickory-resolver, against the configured name servers
/// or the system's. Answers are never cached here: a re-check must see a record the user has
/// just added, not the "no such record" of a minute ago. Cheap to clone.
#[derive(Clone)]
pub struct DomainVerifier {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DomainVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainVerifier").finish_non_exhaustive()
    }
}

impl DomainVerifier {
    /// How long one query waits for an answer.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A verifier for the `dns_servers` setting (the system's name servers when empty).
    pub fn from_config(config: &Config) -> Result<Self, VerifierError> {
        Self::new(&config.dns_servers, Self::DEFAULT_TIMEOUT)
    }

    /// A verifier that asks `servers` over UDP, then TCP (for answers too large for UDP), or
    /// the system's name servers when `servers` is empty; each query waits `timeout`.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Self, VerifierError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            Resolver::builder(provider).map_err(|e| VerifierError::SystemConfig(e.to_string()))?
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let connection = |protocol| {
                        let mut connection = ConnectionConfig::new(protocol);
                        connection.port = server.port();
                        connection
                    };
                    NameServerConfig::new(
                        server.ip(),
                        true,
                        vec![
                            connection(ProtocolConfig::Udp),
                            connection(ProtocolConfig::Tcp),
                        ],
                    )
                })
                .collect();
            Resolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), provider)
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        let resolver = builder
            .build()
            .map_err(|e| VerifierError::Resolver(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// Look `_deploystack.<domain>` up and compare its TXT records with `token`.
    ///
    /// A record's strings are joined (a long TXT value may be split into 255-byte strings),
    /// and surrounding white space or one pair of double quotes — what some DNS panels add
    /// when a value is pasted with them — is ignored.
    pub async fn check(&self, domain: &DomainName, token: &VerificationToken) -> VerifyOutcome {
        // Fully qualified: the resolver's search domains are never appended.
        let name = format!("{}.", record_name(domain));
        let lookup = match self.resolver.txt_lookup(name.as_str()).await {
            Ok(lookup) => lookup,
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => return VerifyOutcome::Missing,
            Err(err) => {
                return VerifyOutcome::LookupFailed {
                    reason: err.to_string(),
                };
            }
        };
        let found: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        if found.is_empty() {
            return VerifyOutcome::Missing;
        }
        let matches = |value: &String| {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            value.trim() == token.as_str()
        };
        if found.iter().any(matches) {
            VerifyOutcome::Verified
        } else {
            VerifyOutcome::OtherValue { found }
        }
    }
}
