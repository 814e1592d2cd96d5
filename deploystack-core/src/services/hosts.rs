//! Host resolution: which site (if any) a request's `Host` names.
//!
//! A deployment is served on its own origin, `<deployment-id>.<base-domain>`, beside the
//! path-based `/<deployment-id>/` of the platform host. Host names come from the client, so
//! they are validated before anything is looked up: [`HostName::parse`] accepts only plain DNS
//! names (letters, digits, `-`, dots between labels of 1–63 bytes), IPv4 addresses and
//! bracketed IPv6 literals, with an optional numeric port that is then dropped; it lowercases
//! the name and refuses a trailing dot, so `ID.LOCALHOST:80` and `id.localhost` are one host
//! and `id.localhost.` is none (a browser treats it as another origin).
//!
//! ## Why a trait?
//! Deployment hosts are a rule that needs no lookup ([`DeploymentHostResolver`]). Project
//! hosts (`<project>.<base-domain>`) need the repository: [`ProjectHostResolver`] asks the
//! deployment rule first and looks up the rest. Verified custom domains are one more
//! lookup of the same kind, asked for names outside the base domain before they are taken
//! for the platform (`services::domains::resolve_host`).
//!
//! ## Why is an unknown name under the base domain a 404?
//! Every name under the base domain is a tenant origin. Falling back to the platform (API,
//! dashboard, path-based serving) there would put platform pages, or another tenant's site,
//! on an origin a tenant could later own. Only names outside the base domain — the base
//! domain itself, IP addresses, the API's own host — are the platform.

use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;

use crate::model::DeploymentId;
use crate::repository::RepositoryError;

/// Longest accepted host name in bytes (RFC 1035's limit for a DNS name).
pub const MAX_HOST_BYTES: usize = 253;

/// Longest accepted DNS label in bytes.
pub const MAX_LABEL_BYTES: usize = 63;

/// A `Host` value that is not a plain host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host: {0}")]
pub struct InvalidHost(&'static str);

/// A validated host name: lowercase, without port and without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostName(String);

impl HostName {
    /// Validate a `Host` header value (or the authority of an absolute request target).
    pub fn parse(raw: &str) -> Result<Self, InvalidHost> {
        if raw.is_empty() {
            return Err(InvalidHost("empty host"));
        }
        if let Some(rest) = raw.strip_prefix('[') {
            let (literal, after) = rest
                .split_once(']')
                .ok_or(InvalidHost("unterminated IPv6 literal"))?;
            literal
                .parse::<Ipv6Addr>()
                .map_err(|_| InvalidHost("invalid IPv6 literal"))?;
            if !after.is_empty() {
                check_port(
                    after
                        .strip_prefix(':')
                        .ok_or(InvalidHost("unexpected characters after an IPv6 literal"))?,
                )?;
            }
            return Ok(Self(format!("[{}]", literal.to_ascii_lowercase())));
        }
        let name = match raw.split_once(':') {
            Some((name, port)) => {
                check_port(port)?;
                name
            }
            None => raw,
        };
        if name.len() > MAX_HOST_BYTES {
            return Err(InvalidHost("the host name is too long"));
        }
        if name.ends_with('.') {
            return Err(InvalidHost("a trailing dot is not allowed"));
        }
        for label in name.split('.') {
            if !valid_label(label.as_bytes()) {
                return Err(InvalidHost(
                    "labels are 1 to 63 letters, digits or hyphens, separated by dots",
                ));
            }
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an IP address rather than a DNS name.
    pub fn is_ip(&self) -> bool {
        self.0.starts_with('[') || self.0.parse::<Ipv4Addr>().is_ok()
    }

    /// The part of this name in front of `.<base>`, if the name is under `base` (exact
    /// suffix match on label boundaries; `base` itself is not under `base`).
    pub fn under<'a>(&'a self, base: &BaseDomain) -> Option<&'a str> {
        self.0
            .strip_suffix(base.0.as_str())
            .and_then(|front| front.strip_suffix('.'))
            .filter(|front| !front.is_empty())
    }
}

fn check_port(port: &str) -> Result<(), InvalidHost> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidHost("the port is not a number"));
    }
    Ok(())
}

/// `^[a-z0-9-]{1,63}$`, case-insensitively (names are lowercased after the check).
fn valid_label(label: &[u8]) -> bool {
    (1..=MAX_LABEL_BYTES).contains(&label.len())
        && label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// The domain under which deployments get their own hosts (`base_domain` in the
/// configuration): a DNS name, lowercase, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDomain(String);

impl BaseDomain {
    /// Validate a configured base domain; IP addresses have no subdomains and are refused.
    pub fn parse(raw: &str) -> Result<Self, InvalidHost> {
        if raw.contains(':') {
            return Err(InvalidHost("the base domain takes no port"));
        }
        let name = HostName::parse(raw)?;
        if name.is_ip() {
            return Err(InvalidHost("the base domain must be a DNS name, not an IP"));
        }
        Ok(Self(name.0))
    }

    /// The domain, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request's host is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostTarget {
    /// The platform: API, health checks, path-based serving (`/<deployment-id>/…`).
    Platform,
    /// A deployment's own origin: every path is a path of this site.
    Deployment(DeploymentId),
    /// A content host that names nothing: 404, never the platform and never another site.
    NotFound,
    /// A project's host (`<project>.<base-domain>`) while the project has no production
    /// deployment yet: a 404 that says so.
    NoProduction,
    /// A custom domain that redirects: answer `status` to the same path and query on `to`.
    Redirect {
        /// The domain to send visitors to.
        to: crate::domains::DomainName,
        /// 301, 302, 307 or 308.
        status: crate::domains::RedirectStatus,
    },
    /// A custom domain that is not verified yet, or redirects through one that is not: a
    /// 404 that says so.
    DomainNotReady,
}

/// Why a host could not be resolved (never "it is unknown": that is [`HostTarget::NotFound`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The lookup behind a host (project alias, custom domain) failed.
    #[error("cannot look the host up: {0}")]
    Unavailable(#[source] RepositoryError),
}

/// Maps a validated host to what it serves. Called on every request, before the router, so
/// implementations should answer from memory for warm hosts.
#[async_trait]
pub trait HostResolver: Send + Sync + std::fmt::Debug {
    /// What `host` serves.
    async fn resolve(&self, host: &HostName) -> Result<HostTarget, HostError>;
}

/// The deployment rule: `<deployment-id>.<base-domain>` is that deployment; any other name
/// under the base domain is [`HostTarget::NotFound`]; everything else is the platform.
///
/// Whether the deployment exists (and is `READY`) is left to the site handler, which answers
/// 404/410 exactly as for path-based requests.
#[derive(Debug, Clone)]
pub struct DeploymentHostResolver {
    base: BaseDomain,
}

impl DeploymentHostResolver {
    /// The rule for deployments under `base`.
    pub fn new(base: BaseDomain) -> Self {
        Self { base }
    }

    /// The rule without a lookup; a resolver for project and custom-domain hosts calls it
    /// first and looks up only the [`HostTarget::NotFound`] names it is responsible for.
    pub fn target(&self, host: &HostName) -> HostTarget {
        match host.under(&self.base) {
            None => HostTarget::Platform,
            // Only one label: `evil.<id>.<base>` must not reach `<id>`.
            Some(front) if front.contains('.') => HostTarget::NotFound,
            Some(label) => match label.parse::<DeploymentId>() {
                Ok(id) => HostTarget::Deployment(id),
                Err(_) => HostTarget::NotFound,
            },
        }
    }
}

#[async_trait]
impl HostResolver for DeploymentHostResolver {
    async fn resolve(&self, host: &HostName) -> Result<HostTarget, HostError> {
        Ok(self.target(host))
    }
}

/// The project rule on top of the deployment rule: `<project>.<base-domain>` serves the
/// project's current production deployment, and a verified custom domain (a name outside
/// the base domain) serves its project's production or redirects
/// (`crate::services::domains::resolve_host`).
///
/// The project is read through the repository handed in — in a server, the read cache's
/// decorator, which answers warm hosts from memory and is told on every node when production
/// moves. The host resolves to one deployment id, once per request, before anything is
/// served: a request that arrives while production moves is answered entirely by the old
/// deployment or entirely by the new one, never a mix.
#[derive(Clone)]
pub struct ProjectHostResolver {
    deployments: DeploymentHostResolver,
    base: BaseDomain,
    /// The platform's own named host (the public URL's), answered without a look-up.
    platform_host: Option<String>,
    repository: std::sync::Arc<dyn crate::repository::Repository>,
}

impl ProjectHostResolver {
    /// Project hosts under `base`, read from `repository`.
    pub fn new(
        base: BaseDomain,
        repository: std::sync::Arc<dyn crate::repository::Repository>,
    ) -> Self {
        Self {
            deployments: DeploymentHostResolver::new(base.clone()),
            base,
            platform_host: None,
            repository,
        }
    }

    /// The same resolver, answering `host` (the public URL's host) as the platform without
    /// looking it up as a custom domain, so the API and `/healthz` on that name do not depend
    /// on the repository. The base domain itself is never looked up either; neither can be
    /// a custom domain (`services::domains` refuses both).
    pub fn with_platform_host(mut self, host: Option<&str>) -> Self {
        self.platform_host = host.map(str::to_ascii_lowercase);
        self
    }
}

impl std::fmt::Debug for ProjectHostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectHostResolver")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HostResolver for ProjectHostResolver {
    async fn resolve(&self, host: &HostName) -> Result<HostTarget, HostError> {
        let target = self.deployments.target(host);
        let platform_name = host.as_str() == self.base.as_str()
            || self.platform_host.as_deref() == Some(host.as_str());
        if target == HostTarget::Platform && !host.is_ip() && !platform_name {
            // A name outside the base domain may be a project's custom domain; a name that
            // cannot be one (`localhost`) is the platform without a look-up.
            if let Ok(domain) = crate::domains::DomainName::parse(host.as_str()) {
                return match crate::services::domains::resolve_host(&*self.repository, &domain)
                    .await
                {
                    Ok(Some(target)) => Ok(target),
                    Ok(None) => Ok(HostTarget::Platform),
                    Err(err) => Err(HostError::Unavailable(err)),
                };
            }
        }
        if target != HostTarget::NotFound {
            return Ok(target);
        }
        // Only one label: `a.b.<base>` is nobody's.
        let Some(name) = host
            .under(&self.base)
            .filter(|label| !label.contains('.'))
            .and_then(|label| label.parse::<crate::model::ProjectName>().ok())
        else {
            return Ok(HostTarget::NotFound);
        };
        match self.repository.get_project(&name).await {
            Ok(project) => Ok(project
                .production
                .map_or(HostTarget::NoProduction, |production| {
                    HostTarget::Deployment(production.deployment_id)
                })),
            Err(RepositoryError::NotFound) => Ok(HostTarget::NotFound),
            Err(err) => Err(HostError::Unavailable(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn target(raw: &str) -> Result<HostTarget, InvalidHost> {
        let rule = DeploymentHostResolver::new(BaseDomain::parse("localhost").unwrap());
        HostName::parse(raw).map(|host| rule.target(&host))
    }

    #[test]
    fn deployment_hosts_ignore_case_and_port() {
        let id: DeploymentId = ID.parse().unwrap();
        for raw in [
            format!("{ID}.localhost"),
            format!("{ID}.localhost:8000"),
            format!("{}.LOCALHOST:80", ID.to_uppercase()),
        ] {
            assert_eq!(target(&raw), Ok(HostTarget::Deployment(id)), "{raw}");
        }
    }

    #[test]
    fn other_hosts_are_the_platform() {
        for raw in [
            "localhost",
            "LOCALHOST:8000",
            "127.0.0.1:8000",
            "[::1]:8000",
            "[::1]",
            "deploy.example.com",
            &format!("{ID}.localhost.evil.com"),
            &format!("{ID}localhost"),
        ] {
            assert_eq!(target(raw), Ok(HostTarget::Platform), "{raw}");
        }
    }

    #[test]
    fn names_under_the_base_that_are_not_ids_are_not_found() {
        for raw in [
            format!("evil.{ID}.localhost"),
            format!("{}.localhost", &ID[1..]),
            format!("{ID}0.localhost"),
            "www.localhost".to_owned(),
            "a.b.localhost".to_owned(),
        ] {
            assert_eq!(target(&raw), Ok(HostTarget::NotFound), "{raw}");
        }
    }

    #[test]
    fn odd_hosts_are_refused() {
        for raw in [
            "",
            &format!("{ID}.localhost."),
            "localhost.",
            &format!("user@{ID}.localhost"),
            &format!("{ID}.localhost:80:80"),
            &format!("{ID}.localhost:"),
            &format!("{ID}.localhost:http"),
            "a..localhost",
            ".localhost",
            "a_b.localhost",
            "a%2eb.localhost",
            "a b.localhost",
            "[::1",
            "[zz]",
            "[::1]x",
            &"a".repeat(64),
            &format!("{}.localhost", "a.".repeat(130)),
        ] {
            assert!(target(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn base_domains_are_dns_names() {
        assert_eq!(
            BaseDomain::parse("Sites.Example.COM").unwrap().as_str(),
            "sites.example.com"
        );
        for raw in ["", "127.0.0.1", "[::1]", "example.com:80", "example.com."] {
            assert!(BaseDomain::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn project_hosts_serve_production_and_nothing_else() {
        use crate::model::{BuildSettings, NewProject, ProductionReason, Retention};
        use crate::repository::prelude::*;
        use crate::repository::{PublishedBuild, SqliteRepository};
        use crate::testing::repository::{file, new_deployment};

        let repo = std::sync::Arc::new(
            SqliteRepository::connect("sqlite::memory:")
                .await
                .expect("connect"),
        );
        let resolver = ProjectHostResolver::new(
            BaseDomain::parse("localhost").unwrap(),
            repo.clone() as std::sync::Arc<dyn Repository>,
        );
        let resolve = |raw: &str| {
            let host = HostName::parse(raw).unwrap();
            let resolver = resolver.clone();
            async move { resolver.resolve(&host).await.unwrap() }
        };
        let name: crate::model::ProjectName = "site".parse().unwrap();
        assert_eq!(resolve("site.localhost:8000").await, HostTarget::NotFound);
        repo.create_project(&NewProject {
            name: name.clone(),
            build_settings: BuildSettings::default(),
            retention: Retention::default(),
        })
        .await
        .unwrap();
        assert_eq!(resolve("site.localhost").await, HostTarget::NoProduction);

        let mut new = new_deployment();
        new.project = Some(name.clone());
        let deployment = repo.create_deployment(&new).await.unwrap();
        let claim = repo
            .claim_deployment(&deployment.id, "w", std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        repo.publish(
            &deployment.id,
            claim.attempt,
            &PublishedBuild {
                strategy: "static".into(),
                files: vec![file("index.html", "x")],
                routing: None,
                log: Vec::new(),
            },
        )
        .await
        .unwrap();
        repo.move_production(&name, &deployment.id, ProductionReason::Promote, None)
            .await
            .unwrap();
        assert_eq!(
            resolve("SITE.localhost:8000").await,
            HostTarget::Deployment(deployment.id)
        );
        // Deployment hosts, nested names and the platform are as before.
        assert_eq!(
            resolve(&format!("{ID}.localhost")).await,
            HostTarget::Deployment(ID.parse().unwrap())
        );
        assert_eq!(resolve("a.site.localhost").await, HostTarget::NotFound);
        assert_eq!(resolve("localhost:8000").await, HostTarget::Platform);
        assert_eq!(resolve("site.example.com").await, HostTarget::Platform);
    }

    /// A name outside the base domain is looked up as a custom domain, except the base
    /// domain itself and the platform's own host, which answer without the repository: the
    /// API and `/healthz` there keep working while the database is down.
    #[cfg(feature = "mock")]
    #[tokio::test]
    async fn the_platforms_own_names_need_no_lookup() {
        let mut repository = crate::repository::MockRepository::new();
        repository
            .expect_get_domain()
            .returning(|_| Err(RepositoryError::Unavailable("down".into())));
        let resolver = ProjectHostResolver::new(
            BaseDomain::parse("sites.example.org").unwrap(),
            std::sync::Arc::new(repository),
        )
        .with_platform_host(Some("Deploy.Example.org"));
        for platform in [
            "sites.example.org",
            "deploy.example.org:443",
            "localhost",
            "127.0.0.1",
        ] {
            let host = HostName::parse(platform).unwrap();
            assert_eq!(
                resolver.resolve(&host).await.unwrap(),
                HostTarget::Platform,
                "{platform}"
            );
        }
        let host = HostName::parse("www.example.com").unwrap();
        assert!(matches!(
            resolver.resolve(&host).await,
            Err(HostError::Unavailable(_))
        ));
    }
}
