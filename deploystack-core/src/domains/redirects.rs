//! The redirects among a project's domains: checked as a whole, ordered for verification.
//!
//! Each domain redirects to at most one other, so the domains form a graph in which every
//! node has at most one outgoing edge. Such a graph is a DAG exactly when following the
//! redirects from any domain ends at a domain that serves; [`RedirectGraph::new`] follows
//! them, refuses a chain that comes back on itself with the cycle spelt out (`a → b → a`),
//! and orders the domains so that each comes after the one it redirects to — the order in
//! which they are verified and applied. A redirect must never be live before its target is,
//! or `www` would send visitors to an apex that does not serve yet.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainName;

/// A domain as a project lists it: `{name, redirect?, redirect_status?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// The domain.
    pub name: DomainName,
    /// Another domain of the same project that this one redirects to; `None`: it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<DomainName>,
    /// The redirect's status; only with `redirect`. Default: 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_status: Option<RedirectStatus>,
}

/// The status of a domain redirect. 301/308 are permanent (browsers and search engines
/// remember them), 302/307 temporary; 307/308 keep the method and body of a `POST`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectStatus {
    /// 301 Moved Permanently.
    MovedPermanently,
    /// 302 Found.
    Found,
    /// 307 Temporary Redirect.
    TemporaryRedirect,
    /// 308 Permanent Redirect: the default, permanent and faithful to the method.
    #[default]
    PermanentRedirect,
}

impl RedirectStatus {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::TemporaryRedirect => 307,
            Self::PermanentRedirect => 308,
        }
    }
}

/// A status code that is not a domain redirect's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redirect_status must be 301, 302, 307 or 308, not {0}")]
pub struct InvalidRedirectStatus(pub u16);

impl TryFrom<u16> for RedirectStatus {
    type Error = InvalidRedirectStatus;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        match code {
            301 => Ok(Self::MovedPermanently),
            302 => Ok(Self::Found),
            307 => Ok(Self::TemporaryRedirect),
            308 => Ok(Self::PermanentRedirect),
            other => Err(InvalidRedirectStatus(other)),
        }
    }
}

impl From<RedirectStatus> for u16 {
    fn from(status: RedirectStatus) -> Self {
        status.code()
    }
}

/// Why a project's domains cannot be applied as listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// The same domain is listed twice.
    #[error("domain {0} is listed more than once")]
    Duplicate(DomainName),
    /// A domain redirects to one the project does not have.
    #[error("domain {from} redirects to {to}, which is not a domain of this project; add it first")]
    UnknownTarget {
        /// The redirecting domain.
        from: DomainName,
        /// The missing target.
        to: DomainName,
    },
    /// `redirect_status` without `redirect`.
    #[error("domain {0} has a redirect_status but no redirect")]
    StatusWithoutRedirect(DomainName),
    /// The redirects go round in a circle.
    #[error("the redirects form a cycle: {0}")]
    Cycle(Cycle),
}

impl RedirectError {
    /// A stable machine-readable code for the API's error body (all are 422s: the request
    /// is well-formed, the domains it lists are not consistent).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Duplicate(_) => "duplicate_domain",
            Self::UnknownTarget { .. } => "unknown_redirect_target",
            Self::StatusWithoutRedirect(_) => "redirect_status_without_redirect",
            Self::Cycle(_) => "redirect_cycle",
        }
    }
}

/// A cycle of redirects, starting and ending at its smallest name: `a → b → c → a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<DomainName>);

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, name) in self.0.iter().chain(self.0.first()).enumerate() {
            if n > 0 {
                f.write_str(" → ")?;
            }
            f.write_str(name.as_str())?;
        }
        Ok(())
    }
}

/// Where a domain stands in the order of application, given which domains are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Its own verification is pending.
    Unverified,
    /// Verified, but it redirects to a domain that is not ready yet: this names the first
    /// domain along its redirects that is not verified.
    WaitingFor(DomainName),
    /// Verified, and so is every domain its redirects lead through: it may be applied.
    Ready,
}

/// A project's domains with their redirects, checked: every target is a domain of the set,
/// nothing is listed twice, no redirect chain comes back on itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectGraph {
    /// Every domain, each after the one it redirects to; ties by name, so the order is
    /// deterministic.
    order: Vec<DomainName>,
    /// Each redirecting domain's target and status.
    redirects: BTreeMap<DomainName, (DomainName, RedirectStatus)>,
}

impl RedirectGraph {
    /// Check `domains` as a whole.
    pub fn new(domains: &[DomainSpec]) -> Result<Self, RedirectError> {
        let mut targets: BTreeMap<&DomainName, Option<&DomainName>> = BTreeMap::new();
        for spec in domains {
            if targets.insert(&spec.name, spec.redirect.as_ref()).is_some() {
                return Err(RedirectError::Duplicate(spec.name.clone()));
            }
            if spec.redirect.is_none() && spec.redirect_status.is_some() {
                return Err(RedirectError::StatusWithoutRedirect(spec.name.clone()));
            }
        }
        for (from, to) in &targets {
            if let Some(to) = to.filter(|to| !targets.contains_key(to)) {
                return Err(RedirectError::UnknownTarget {
                    from: (*from).clone(),
                    to: to.clone(),
                });
            }
        }

        // Depth: how many redirects lead from a domain to one that serves. Following a chain
        // longer than the number of domains means it loops.
        let mut depth: BTreeMap<&DomainName, usize> = BTreeMap::new();
        for start in targets.keys() {
            let mut chain: Vec<&DomainName> = Vec::new();
            let mut at = *start;
            let base = loop {
                if let Some(known) = depth.get(at) {
                    break *known;
                }
                if let Some(seen) = chain.iter().position(|name| *name == at) {
                    return Err(RedirectError::Cycle(cycle(&chain[seen..])));
                }
                chain.push(at);
                match targets.get(at).copied().flatten() {
                    Some(next) => at = next,
                    None => {
                        // `at` serves: depth 0, counted below as the chain's last entry.
                        let last = chain.pop().unwrap_or(at);
                        depth.insert(last, 0);
                        break 0;
                    }
                }
            };
            for (n, name) in chain.iter().rev().enumerate() {
                depth.insert(name, base + n + 1);
            }
        }

        let mut order: Vec<DomainName> = targets.keys().map(|name| (*name).clone()).collect();
        order.sort_by_key(|name| depth.get(name).copied().unwrap_or(0));
        let redirects = domains
            .iter()
            .filter_map(|spec| {
                let to = spec.redirect.clone()?;
                Some((
                    spec.name.clone(),
                    (to, spec.redirect_status.unwrap_or_default()),
                ))
            })
            .collect();
        Ok(Self { order, redirects })
    }

    /// Every domain, each after the domain it redirects to: the order in which to verify and
    /// apply them.
    pub fn order(&self) -> &[DomainName] {
        &self.order
    }

    /// Where `name` redirects, and with which status; `None` when it serves (or is unknown).
    pub fn redirect_of(&self, name: &DomainName) -> Option<(&DomainName, RedirectStatus)> {
        self.redirects.get(name).map(|(to, status)| (to, *status))
    }

    /// The domain that finally serves `name`'s visitors, following every redirect.
    pub fn final_target<'a>(&'a self, name: &'a DomainName) -> &'a DomainName {
        let mut at = name;
        // Bounded by the number of domains: the graph has no cycle.
        for _ in 0..=self.order.len() {
            match self.redirects.get(at) {
                Some((to, _)) => at = to,
                None => break,
            }
        }
        at
    }

    /// Each domain with its [`Readiness`], in [`order`](Self::order): a domain is ready when
    /// it is verified and so is everything its redirects lead through.
    pub fn readiness(
        &self,
        is_verified: impl Fn(&DomainName) -> bool,
    ) -> Vec<(DomainName, Readiness)> {
        let mut ready: BTreeMap<&DomainName, Readiness> = BTreeMap::new();
        for name in &self.order {
            let state = if !is_verified(name) {
                Readiness::Unverified
            } else {
                match self.redirects.get(name) {
                    None => Readiness::Ready,
                    // The target comes earlier in the order, so its state is known.
                    Some((to, _)) => match ready.get(to) {
                        Some(Readiness::Ready) => Readiness::Ready,
                        Some(Readiness::WaitingFor(first)) => Readiness::WaitingFor(first.clone()),
                        _ => Readiness::WaitingFor(to.clone()),
                    },
                }
            };
            ready.insert(name, state);
        }
        self.order
            .iter()
            .map(|name| {
                let state = ready.remove(name).unwrap_or(Readiness::Unverified);
                (name.clone(), state)
            })
            .collect()
    }
}

/// The cycle `chain` closes, rotated to start at its smallest name.
fn cycle(chain: &[&DomainName]) -> Cycle {
    let start = chain
        .iter()
        .enumerate()
        .min_by_key(|(_, name)| **name)
        .map_or(0, |(n, _)| n);
    Cycle(
        chain[start..]
            .iter()
            .chain(&chain[..start])
            .map(|name| (*name).clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(text: &str) -> DomainName {
        DomainName::parse(text).unwrap()
    }

    fn spec(from: &str, to: Option<&str>) -> DomainSpec {
        DomainSpec {
            name: name(from),
            redirect: to.map(name),
            redirect_status: None,
        }
    }

    #[test]
    fn targets_come_before_the_domains_that_redirect_to_them() {
        let graph = RedirectGraph::new(&[
            spec("old.example.com", Some("www.example.com")),
            spec("www.example.com", Some("example.com")),
            spec("example.com", None),
            spec("blog.example.com", None),
        ])
        .unwrap();
        let order: Vec<&str> = graph.order().iter().map(DomainName::as_str).collect();
        assert_eq!(
            order,
            [
                "blog.example.com",
                "example.com",
                "www.example.com",
                "old.example.com"
            ]
        );
        assert_eq!(
            graph.redirect_of(&name("www.example.com")),
            Some((&name("example.com"), RedirectStatus::PermanentRedirect))
        );
        assert_eq!(graph.redirect_of(&name("example.com")), None);
        assert_eq!(
            graph.final_target(&name("old.example.com")),
            &name("example.com")
        );
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let err = RedirectGraph::new(&[
            spec("b.example", Some("c.example")),
            spec("a.example", Some("b.example")),
            spec("c.example", Some("a.example")),
            spec("d.example", Some("a.example")),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the redirects form a cycle: a.example → b.example → c.example → a.example"
        );
        assert_eq!(err.code(), "redirect_cycle");
        let err = RedirectGraph::new(&[spec("a.example", Some("a.example"))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the redirects form a cycle: a.example → a.example"
        );
    }

    #[test]
    fn unknown_targets_duplicates_and_stray_statuses_are_refused() {
        let err = RedirectGraph::new(&[spec("www.example.com", Some("example.com"))]).unwrap_err();
        assert_eq!(
            err,
            RedirectError::UnknownTarget {
                from: name("www.example.com"),
                to: name("example.com")
            }
        );
        let err =
            RedirectGraph::new(&[spec("a.example", None), spec("A.example.", None)]).unwrap_err();
        assert_eq!(err, RedirectError::Duplicate(name("a.example")));
        let stray = DomainSpec {
            redirect_status: Some(RedirectStatus::Found),
            ..spec("a.example", None)
        };
        assert!(matches!(
            RedirectGraph::new(&[stray]),
            Err(RedirectError::StatusWithoutRedirect(_))
        ));
    }

    #[test]
    fn statuses_read_and_write_as_numbers() {
        let spec: DomainSpec = serde_json::from_value(serde_json::json!({
            "name": "www.example.com", "redirect": "example.com", "redirect_status": 301
        }))
        .unwrap();
        assert_eq!(spec.redirect_status, Some(RedirectStatus::MovedPermanently));
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["redirect_status"],
            serde_json::json!(301)
        );
        let err = serde_json::from_value::<DomainSpec>(serde_json::json!({
            "name": "www.example.com", "redirect": "example.com", "redirect_status": 303
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("301, 302, 307 or 308, not 303"),
            "{err}"
        );
    }

    #[test]
    fn a_redirect_waits_for_its_target_to_be_verified() {
        let graph = RedirectGraph::new(&[
            spec("old.example.com", Some("www.example.com")),
            spec("www.example.com", Some("example.com")),
            spec("example.com", None),
        ])
        .unwrap();
        let verified = ["www.example.com", "old.example.com"];
        let states = graph.readiness(|n| verified.contains(&n.as_str()));
        assert_eq!(
            states,
            [
                (name("example.com"), Readiness::Unverified),
                (
                    name("www.example.com"),
                    Readiness::WaitingFor(name("example.com"))
                ),
                (
                    name("old.example.com"),
                    Readiness::WaitingFor(name("example.com"))
                ),
            ]
        );
        let states = graph.readiness(|_| true);
        assert!(states.iter().all(|(_, state)| *state == Readiness::Ready));
    }

    /// Random graphs over `n` domains where each redirects to a random one or serves.
    fn graphs() -> impl Strategy<Value = Vec<DomainSpec>> {
        (1usize..8).prop_flat_map(|n| {
            proptest::collection::vec(proptest::option::of(0..n), n).prop_map(|edges| {
                edges
                    .iter()
                    .enumerate()
                    .map(|(i, to)| DomainSpec {
                        name: name(&format!("d{i}.example")),
                        redirect: to.map(|j| name(&format!("d{j}.example"))),
                        redirect_status: None,
                    })
                    .collect()
            })
        })
    }

    /// Whether following redirects from some domain comes back to one already passed.
    fn has_cycle(specs: &[DomainSpec]) -> bool {
        let next = |n: &DomainName| {
            specs
                .iter()
                .find(|s| &s.name == n)
                .and_then(|s| s.redirect.clone())
        };
        specs.iter().any(|s| {
            let mut at = s.name.clone();
            for _ in 0..specs.len() {
                match next(&at) {
                    Some(to) => at = to,
                    None => return false,
                }
            }
            true
        })
    }

    proptest! {
        #[test]
        fn cycles_are_found_exactly_and_orders_are_topological(specs in graphs(), mask in any::<u8>()) {
            match RedirectGraph::new(&specs) {
                Err(RedirectError::Cycle(Cycle(cycle))) => {
                    prop_assert!(has_cycle(&specs));
                    // Each step of the named cycle is a real redirect, and it closes.
                    for (n, from) in cycle.iter().enumerate() {
                        let to = &cycle[(n + 1) % cycle.len()];
                        let spec = specs.iter().find(|s| &s.name == from).unwrap();
                        prop_assert_eq!(spec.redirect.as_ref(), Some(to));
                    }
                    prop_assert_eq!(cycle.iter().min(), cycle.first());
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
                Ok(graph) => {
                    prop_assert!(!has_cycle(&specs));
                    prop_assert_eq!(graph.order().len(), specs.len());
                    let position = |n: &DomainName| graph.order().iter().position(|o| o == n).unwrap();
                    for spec in &specs {
                        if let Some(to) = &spec.redirect {
                            prop_assert!(position(to) < position(&spec.name));
                        }
                    }
                    // Ready domains are verified and lead only through ready domains.
                    // Domain dN is verified when bit N of `mask` is set.
                    let verified = |n: &DomainName| mask >> (n.as_str().as_bytes()[1] - b'0') & 1 == 1;
                    let states = graph.readiness(verified);
                    for (n, state) in &states {
                        if *state == Readiness::Ready {
                            prop_assert!(verified(n));
                            if let Some((to, _)) = graph.redirect_of(n) {
                                let target = states.iter().find(|(m, _)| m == to).unwrap();
                                prop_assert_eq!(&target.1, &Readiness::Ready);
                            }
                        }
                    }
                }
            }
        }
    }
}
