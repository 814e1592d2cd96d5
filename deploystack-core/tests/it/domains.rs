//! Domain verification against a real DNS server the test starts on loopback
//! (`testing::dns::DnsTestServer`): the resolver, its configuration from `dns_servers` and
//! each outcome a user can meet — verified, no record, another value, a broken server, no
//! server at all — and a record added while the domain is pending is seen by the next check.

use std::time::Duration;

use deploystack_core::Config;
use deploystack_core::domains::{
    DomainName, DomainVerifier, VerificationRecord, VerificationToken, VerifyOutcome,
};
use deploystack_core::testing::dns::DnsTestServer;

fn domain(name: &str) -> DomainName {
    DomainName::parse(name).unwrap()
}

/// A verifier asking only `server`, built the way the server builds it: from the setting.
fn verifier(server: &DnsTestServer) -> DomainVerifier {
    let config = Config {
        dns_servers: vec![server.addr()],
        ..Config::default()
    };
    DomainVerifier::from_config(&config).unwrap()
}

#[tokio::test]
async fn a_published_token_verifies_the_domain() {
    let dns = DnsTestServer::start().await.unwrap();
    let name = domain("www.Example.com");
    let token = VerificationToken::generate();
    let record = VerificationRecord::new(&name, &token);
    assert_eq!(record.name, "_deploystack.www.example.com");
    // Beside an unrelated record, as a real zone would have.
    dns.set_txt(&record.name, &["v=spf1 -all", &record.value]);

    let outcome = verifier(&dns).check(&name, &token).await;
    assert_eq!(outcome, VerifyOutcome::Verified);
    assert!(outcome.is_verified());
    assert_eq!(outcome.code(), "verified");
}

#[tokio::test]
async fn a_missing_record_and_another_value_say_what_to_fix() {
    let dns = DnsTestServer::start().await.unwrap();
    let verifier = verifier(&dns);
    let name = domain("example.org");
    let token = VerificationToken::generate();

    let outcome = verifier.check(&name, &token).await;
    assert_eq!(outcome, VerifyOutcome::Missing);
    assert_eq!(outcome.code(), "record_missing");
    let advice = outcome.explain(&name, &token);
    assert!(advice.contains("_deploystack.example.org") && advice.contains(token.as_str()));

    // The name exists, with no TXT record.
    dns.set_txt("_deploystack.example.org", &[]);
    assert_eq!(verifier.check(&name, &token).await, VerifyOutcome::Missing);

    let stale = VerificationToken::generate();
    dns.set_txt("_deploystack.example.org", &[stale.as_str()]);
    let outcome = verifier.check(&name, &token).await;
    assert_eq!(
        outcome,
        VerifyOutcome::OtherValue {
            found: vec![stale.to_string()]
        }
    );
    assert!(outcome.explain(&name, &token).contains(stale.as_str()));

    // Pasted with quotes and a trailing space, as some DNS panels keep them: still the token.
    dns.set_txt(
        "_deploystack.example.org",
        &[&format!("\"{}\" ", token.as_str())],
    );
    assert_eq!(verifier.check(&name, &token).await, VerifyOutcome::Verified);
}

#[tokio::test]
async fn each_check_asks_again_so_a_new_record_is_seen() {
    let dns = DnsTestServer::start().await.unwrap();
    let verifier = verifier(&dns);
    let name = domain("shop.example.net");
    let token = VerificationToken::generate();
    assert_eq!(verifier.check(&name, &token).await, VerifyOutcome::Missing);
    let asked = dns.queries();

    dns.set_txt("_deploystack.shop.example.net", &[token.as_str()]);
    assert_eq!(verifier.check(&name, &token).await, VerifyOutcome::Verified);
    assert!(dns.queries() > asked, "the second check reached the server");

    dns.remove("_deploystack.shop.example.net");
    assert_eq!(verifier.check(&name, &token).await, VerifyOutcome::Missing);
}

#[tokio::test]
async fn a_broken_or_absent_server_is_a_failed_lookup_not_a_missing_record() {
    let dns = DnsTestServer::start().await.unwrap();
    let name = domain("example.com");
    let token = VerificationToken::generate();
    dns.fail("_deploystack.example.com");
    let outcome = verifier(&dns).check(&name, &token).await;
    assert!(
        matches!(outcome, VerifyOutcome::LookupFailed { .. }),
        "{outcome:?}"
    );

    // A port nothing listens on any more: the query goes unanswered until the timeout.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let verifier = DomainVerifier::new(&[closed], Duration::from_millis(300)).unwrap();
    let outcome = verifier.check(&name, &token).await;
    let VerifyOutcome::LookupFailed { reason } = &outcome else {
        panic!("expected a failed lookup, got {outcome:?}");
    };
    assert!(!reason.is_empty());
    assert!(outcome.explain(&name, &token).contains("checked again"));
}
