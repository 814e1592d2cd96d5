//! Custom domains: their names, the redirects among a project's domains, and proof that a
//! domain belongs to whoever adds it.
//!
//! - [`DomainName`]: a validated, normalised name (IDNA to punycode, lowercase, no trailing
//!   dot), with an error that names what is wrong.
//! - [`RedirectGraph`]: a project's `{name, redirect?, redirect_status?}` list, checked as a
//!   whole — unknown targets and cycles refused, the cycle spelt out (`a → b → a`) — and
//!   ordered so that a domain is verified and applied after the domain it redirects to.
//! - [`VerificationToken`] and [`VerificationRecord`]: the TXT record a user publishes,
//!   `_deploystack.<domain>` holding a per-domain random token.
//! - [`DomainVerifier`]: looks the record up with hickory-resolver against the `dns_servers`
//!   setting (the system's name servers by default).
//! - [`RecheckSchedule`]: when a pending domain is looked up again (backoff with jitter).
//!
//! Nothing here stores anything: [`services::domains`](crate::services::domains) keeps
//! domains, tokens and check times in the repository (`DomainRepository`) and drives these
//! pieces.
//!
//! # Why verify at all?
//! Serving a domain only because someone listed it would let any user of an installation
//! claim a name they do not control — a name that may already point at this installation
//! for someone else's site. Publishing a random token in the domain's DNS proves control of
//! the zone, as Vercel, Netlify, GitHub Pages and ACME's DNS-01 challenge do.
//!
//! # Why a TXT record under `_deploystack.`?
//! - TXT, because a user can add one beside whatever the name already has: unlike a CNAME,
//!   it does not conflict with an apex's other records or with a site still being served
//!   from elsewhere, so a domain can be verified *before* traffic moves.
//! - Under its own label, because TXT records at the name itself are shared by SPF, site
//!   verifications of other services and more; a dedicated, underscore-prefixed name
//!   (RFC 8552's convention for attribute leaves, as `_acme-challenge` and `_dmarc` use)
//!   holds only ours, cannot be a host name, and is obviously ours to whoever reads the zone.
//! - A token per domain, random (192 bits), so a record copied from another installation
//!   or another domain proves nothing, and nobody can guess one.
//!
//! # Why no wildcards?
//! A wildcard (`*.example.com`) would have to be proved for the whole zone, served for names
//! nobody listed and given certificates DNS-01 alone can issue. Until that is designed, each
//! name is added on its own; the error says so.

mod name;
mod recheck;
mod redirects;
mod verification;
mod verifier;

pub use name::{DomainName, DomainProblem, InvalidDomain, MAX_DOMAIN_BYTES, MAX_LABEL_BYTES};
pub use recheck::RecheckSchedule;
pub use redirects::{
    Cycle, DomainSpec, InvalidRedirectStatus, Readiness, RedirectError, RedirectGraph,
    RedirectStatus,
};
pub use verification::{
    InvalidToken, RECORD_PREFIX, VerificationRecord, VerificationToken, record_name,
};
pub use verifier::{DomainVerifier, VerifierError, VerifyOutcome};
