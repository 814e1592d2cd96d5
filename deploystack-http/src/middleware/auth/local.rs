//! The `local` rule: which requests may skip the token when `auth` is `local`.
//!
//! # Why these three checks
//! Loopback alone is not enough: a browser on the same machine is a loopback peer for every
//! page it shows. So a request passes without a token only when
//! 1. its peer is a loopback address — nobody else on the network;
//! 2. its `Host` is a loopback name (`localhost`, `127.0.0.1` or any `127.x.y.z`, `[::1]`,
//!    with any port, or none) — a DNS-rebinding page reaches us under its own name, which
//!    is not one of these. `*.localhost` is refused too: those names are tenants' origins
//!    (`<id>.localhost`), never the API's;
//! 3. it is not cross-site: `Sec-Fetch-Site: cross-site` is refused, and so is an `Origin`
//!    that is not itself a loopback origin — `Origin: null` included, which is what a
//!    sandboxed path-based page (`/<id>/…`, see `routes::site`) and a `file://` page send.
//!    A request without `Origin` is not from a page's script or form (browsers send it on
//!    every cross-origin request and every non-GET one), so curl and scripts pass.
//!
//! Ports are not compared: a page on `http://localhost:3000` (a dev server) is the same site
//! as the API on `http://localhost:8000`, as browsers see it too. Anything on this machine
//! that serves pages on a loopback name is trusted by this rule; `auth = required` trusts
//! nothing.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};

/// Why a request may not skip the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is on the network.
    RemotePeer,
    /// The `Host` names something else than this machine's loopback.
    ForeignHost,
    /// A page of another site sent it.
    CrossSite,
}

impl Refusal {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::RemotePeer => {
                "this server only lets requests from its own machine through without a token; send Authorization: Bearer <token>"
            }
            Refusal::ForeignHost => {
                "without a token, the API answers only to localhost, 127.0.0.1 or [::1] as the Host; send Authorization: Bearer <token>"
            }
            Refusal::CrossSite => {
                "a page of another site cannot call this API without a token (Origin or Sec-Fetch-Site says cross-site)"
            }
        }
    }
}

/// Whether a request from `peer` (`None`: it did not come through the server, an embedder
/// calling the router in-process) with these headers may skip the token.
pub fn check(peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), Refusal> {
    if peer.is_some_and(|ip| !ip.to_canonical().is_loopback()) {
        return Err(Refusal::RemotePeer);
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    if let Some(host) = hosts.next() {
        let loopback = host.to_str().ok().is_some_and(is_loopback_authority);
        if !loopback || hosts.next().is_some() {
            return Err(Refusal::ForeignHost);
        }
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        !origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .is_some_and(|(scheme, authority)| {
                matches!(scheme, "http" | "https") && is_loopback_authority(authority)
            })
    });
    if cross_site || foreign_origin {
        return Err(Refusal::CrossSite);
    }
    Ok(())
}

/// Whether `authority` (`host[:port]`) names this machine's loopback.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) if rest.is_empty() || is_port(rest) => ip,
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) if is_port(&format!(":{port}")) => host,
            Some(_) => return false,
            None => authority,
        },
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|port| !port.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn local() -> Option<IpAddr> {
        Some("127.0.0.1".parse().unwrap())
    }

    #[test]
    fn curl_on_this_machine_passes() {
        for host in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:8000",
            "127.0.0.2",
            "[::1]:8000",
            "LOCALHOST",
        ] {
            assert_eq!(
                check(local(), &headers(&[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        assert_eq!(check(Some("::1".parse().unwrap()), &headers(&[])), Ok(()));
        assert_eq!(check(None, &headers(&[])), Ok(()));
        let same_site = headers(&[
            ("host", "localhost:8000"),
            ("origin", "http://localhost:8000"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check(local(), &same_site), Ok(()));
    }

    #[test]
    fn a_peer_on_the_network_is_refused() {
        for peer in ["10.0.0.7", "192.168.1.2", "::ffff:10.0.0.7", "2001:db8::1"] {
            assert_eq!(
                check(
                    Some(peer.parse().unwrap()),
                    &headers(&[("host", "localhost")])
                ),
                Err(Refusal::RemotePeer),
                "{peer}"
            );
        }
        // A v4-mapped loopback is loopback.
        assert_eq!(
            check(Some("::ffff:127.0.0.1".parse().unwrap()), &headers(&[])),
            Ok(())
        );
    }

    #[test]
    fn foreign_hosts_are_refused() {
        for host in [
            "evil.example",
            "evil.example:8000",
            "abc.localhost:8000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "localhost:notaport",
            "[::1]x",
        ] {
            assert_eq!(
                check(local(), &headers(&[("host", host)])),
                Err(Refusal::ForeignHost),
                "{host}"
            );
        }
    }

    #[test]
    fn cross_site_requests_are_refused() {
        for extra in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            (
                "origin",
                "http://0123456789abcdef0123456789abcdef.localhost:8000",
            ),
            ("origin", "file://"),
            ("sec-fetch-site", "cross-site"),
        ] {
            assert_eq!(
                check(local(), &headers(&[("host", "localhost:8000"), extra])),
                Err(Refusal::CrossSite),
                "{extra:?}"
            );
        }
    }
}
