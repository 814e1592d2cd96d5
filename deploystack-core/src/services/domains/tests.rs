//! The domain service on SQLite, with a fake DNS server.

use super::*;
use crate::events::Event;
use crate::model::{Change, ChangeAction, NewProject};

fn spec(name: &str, redirect: Option<&str>) -> DomainSpec {
    DomainSpec {
        name: DomainName::parse(name).expect("a valid domain"),
        redirect: redirect.map(|r| DomainName::parse(r).expect("a valid domain")),
        redirect_status: None,
    }
}

async fn services_with(projects: &[&str]) -> Services {
    let config = Config {
        public_url: Some("https://deploy.example.org".into()),
        base_domain: "sites.example.org".into(),
        ..Config::default()
    };
    let services = Services::in_memory(config).await.expect("services");
    for name in projects {
        crate::services::projects::create(
            &services,
            NewProject {
                name: name.parse().expect("a project name"),
                build_settings: Default::default(),
                retention: Default::default(),
            },
            None,
        )
        .await
        .expect("create a project");
    }
    services
}

fn names(changes: &[Change]) -> Vec<(ChangeAction, &str)> {
    changes
        .iter()
        .map(|c| (c.action, c.name.as_str()))
        .collect()
}

#[test]
fn inputs_are_parsed_with_the_field_at_fault_named() {
    let input = |name: &str, redirect: Option<&str>, status: Option<u16>| DomainInput {
        name: name.into(),
        redirect: redirect.map(Into::into),
        redirect_status: status,
    };
    let parsed = parse_input(
        &input("WWW.Example.COM.", Some("example.com"), Some(301)),
        "",
    )
    .unwrap();
    assert_eq!(parsed.name.as_str(), "www.example.com");
    assert_eq!(
        parsed.redirect_status,
        Some(RedirectStatus::MovedPermanently)
    );
    let err = parse_inputs(&[
        input("a.example", None, None),
        input("*.example", None, None),
    ])
    .unwrap_err();
    assert_eq!(err.field(), Some("domains[1].name"));
    assert_eq!(err.code(), "invalid_domain");
    let err = parse_input(&input("a.example", Some("http://b"), None), "").unwrap_err();
    assert_eq!(err.field(), Some("redirect"));
    let err = parse_input(&input("a.example", Some("b.example"), Some(303)), "").unwrap_err();
    assert_eq!(err.field(), Some("redirect_status"));
}

#[test]
fn the_platforms_names_are_reserved_and_cycles_are_spelt_out() {
    let config = Config {
        public_url: Some("https://deploy.example.org:8443/".into()),
        base_domain: "sites.example.org".into(),
        ..Config::default()
    };
    for (n, name) in [
        "sites.example.org",
        "shop.sites.example.org",
        "deploy.example.org",
    ]
    .into_iter()
    .enumerate()
    {
        let mut list = vec![spec("fine.example", None)];
        list.insert(n.min(1), spec(name, None));
        let err = validate_desired(&config, &list).unwrap_err();
        assert_eq!(err.code(), "domain_reserved", "{name}");
        assert_eq!(
            err.field(),
            Some(format!("domains[{}].name", n.min(1)).as_str())
        );
    }
    let err = validate_desired(
        &config,
        &[
            spec("b.example", Some("c.example")),
            spec("a.example", Some("b.example")),
            spec("c.example", Some("a.example")),
        ],
    )
    .unwrap_err();
    assert_eq!(err.code(), "redirect_cycle");
    assert!(
        err.to_string()
            .contains("a.example → b.example → c.example → a.example"),
        "{err}"
    );
    let err = validate_desired(&config, &[spec("w.example", Some("x.example"))]).unwrap_err();
    assert_eq!(err.field(), Some("domains[0].redirect"));
    assert!(validate_desired(&config, &[spec("example.com", None)]).is_ok());
}

#[tokio::test]
async fn sync_creates_updates_and_deletes_and_a_second_apply_changes_nothing() {
    let services = services_with(&["shop", "other"]).await;
    let shop: ProjectName = "shop".parse().unwrap();
    let desired = [
        spec("www.shop.example", Some("shop.example")),
        spec("shop.example", None),
    ];
    let changes = sync(&services, &shop, &desired, None).await.unwrap();
    // Targets first.
    assert_eq!(
        names(&changes),
        [
            (ChangeAction::Created, "shop.example"),
            (ChangeAction::Created, "www.shop.example")
        ]
    );
    assert!(
        sync(&services, &shop, &desired, None)
            .await
            .unwrap()
            .is_empty()
    );
    let token = get(&services, &shop, "shop.example")
        .await
        .unwrap()
        .domain
        .token;

    let desired = [
        DomainSpec {
            redirect_status: Some(RedirectStatus::Found),
            ..spec("www.shop.example", Some("shop.example"))
        },
        spec("shop.example", None),
        spec("blog.shop.example", None),
    ];
    let changes = sync(&services, &shop, &desired, None).await.unwrap();
    assert_eq!(
        names(&changes),
        [
            (ChangeAction::Created, "blog.shop.example"),
            (ChangeAction::Updated, "www.shop.example")
        ]
    );
    let changes = sync(&services, &shop, &[spec("shop.example", None)], None)
        .await
        .unwrap();
    let mut deleted = names(&changes);
    deleted.sort_by_key(|(_, name)| *name);
    assert_eq!(
        deleted,
        [
            (ChangeAction::Deleted, "blog.shop.example"),
            (ChangeAction::Deleted, "www.shop.example")
        ]
    );
    // A domain that stays keeps its token.
    let kept = get(&services, &shop, "shop.example").await.unwrap();
    assert_eq!(kept.domain.token, token);

    // Another project's name is refused before anything is written.
    let other: ProjectName = "other".parse().unwrap();
    let err = sync(
        &services,
        &other,
        &[spec("new.example", None), spec("shop.example", None)],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "domain_taken");
    assert_eq!(err.field(), Some("domains[1].name"));
    assert!(!err.to_string().contains("shop "), "{err}");
    assert!(list(&services, &other).await.unwrap().is_empty());
    let err = sync(&services, &"nobody".parse().unwrap(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "project_not_found");
}

/// The background pass claims due domains, looks each up, records the result with the
/// next delay, and announces a verification.
#[cfg(feature = "testing")]
#[tokio::test]
async fn a_background_pass_verifies_due_domains_and_reschedules_the_others() {
    let dns = crate::testing::dns::DnsTestServer::start()
        .await
        .expect("dns server");
    let config = Config {
        dns_servers: vec![dns.addr()],
        domain_recheck_secs: 100,
        ..Config::default()
    };
    let services = Services::in_memory(config).await.expect("services");
    let project: ProjectName = "bg".parse().expect("name");
    crate::services::projects::create(
        &services,
        NewProject {
            name: project.clone(),
            build_settings: Default::default(),
            retention: Default::default(),
        },
        None,
    )
    .await
    .expect("project");
    let mut events = services.broadcast.subscribe();
    sync(
        &services,
        &project,
        &[spec("found.example", None), spec("missing.example", None)],
        None,
    )
    .await
    .expect("sync");
    for name in ["found.example", "missing.example"] {
        services
            .repository
            .record_domain_check(
                &DomainName::parse(name).expect("name"),
                false,
                Duration::ZERO,
            )
            .await
            .expect("make it due now (one failed check so far)");
    }
    let found = get(&services, &project, "found.example")
        .await
        .expect("domain");
    dns.set_txt("_deploystack.found.example", &[found.domain.token.as_str()]);
    tokio::time::sleep(Duration::from_millis(10)).await;

    assert_eq!(recheck_due(&services).await.expect("recheck"), 1);
    let states = list(&services, &project).await.expect("list");
    let (found, missing) = (&states[0].domain, &states[1].domain);
    assert!(found.is_verified());
    assert_eq!(states[0].readiness, Readiness::Ready);
    assert!(!missing.is_verified());
    assert_eq!(missing.check_attempts, 2);
    let next = missing.next_check_at.expect("rescheduled");
    // The delay after the second failed check: 200 s, less up to a fifth.
    let wait = next - missing.updated_at.max(time::OffsetDateTime::now_utc());
    assert!(wait > time::Duration::seconds(150), "{wait}");
    // The sync announced its change first (`ProjectUpdated`); then the verification.
    let verified = loop {
        match events.recv().await.expect("an event") {
            Event::ProjectUpdated { .. } => {}
            other => break other,
        }
    };
    match verified {
        Event::DomainVerified {
            project,
            domain,
            by,
        } => {
            assert_eq!((project.as_str(), domain.as_str()), ("bg", "found.example"));
            assert_eq!(by, None, "the background re-check acts for nobody");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing is due any more.
    assert_eq!(recheck_due(&services).await.expect("recheck"), 0);
}

/// Redirects a race left dangling or looping make only their own domains wait.
#[tokio::test]
async fn a_dangling_or_looping_redirect_makes_only_its_domains_wait() {
    let services = services_with(&["race"]).await;
    let race: ProjectName = "race".parse().expect("name");
    sync(
        &services,
        &race,
        &[
            spec("serves.example", None),
            spec("a.example", None),
            spec("b.example", None),
            spec("c.example", None),
        ],
        None,
    )
    .await
    .expect("sync");
    let repo = services.repository.as_ref();
    let name = |n: &str| DomainName::parse(n).expect("name");
    for n in ["serves.example", "a.example", "b.example", "c.example"] {
        repo.record_domain_check(&name(n), true, Duration::ZERO)
            .await
            .expect("verify");
    }
    // What two racing requests could leave behind, written past the service's checks.
    let status = Some(RedirectStatus::PermanentRedirect);
    repo.set_domain_redirect(&name("a.example"), Some(name("b.example")), status)
        .await
        .expect("a → b");
    repo.set_domain_redirect(&name("b.example"), Some(name("a.example")), status)
        .await
        .expect("b → a");
    repo.set_domain_redirect(&name("c.example"), Some(name("gone.example")), status)
        .await
        .expect("c → gone");
    let states = list(&services, &race).await.expect("list");
    let of = |n: &str| {
        states
            .iter()
            .find(|s| s.domain.name.as_str() == n)
            .map(|s| s.readiness.clone())
            .expect("listed")
    };
    assert_eq!(of("serves.example"), Readiness::Ready);
    assert_eq!(of("c.example"), Readiness::WaitingFor(name("gone.example")));
    assert!(matches!(of("a.example"), Readiness::WaitingFor(_)));
    for n in ["a.example", "b.example", "c.example"] {
        assert_eq!(
            resolve_host(repo, &name(n)).await.expect("resolve"),
            Some(HostTarget::DomainNotReady),
            "{n}"
        );
    }
    assert_eq!(
        resolve_host(repo, &name("serves.example"))
            .await
            .expect("resolve"),
        Some(HostTarget::NoProduction)
    );
}

#[tokio::test]
async fn a_host_serves_only_when_it_and_its_targets_are_verified() {
    let services = services_with(&["acme"]).await;
    let acme: ProjectName = "acme".parse().unwrap();
    sync(
        &services,
        &acme,
        &[
            spec("acme.example", None),
            spec("www.acme.example", Some("acme.example")),
        ],
        None,
    )
    .await
    .unwrap();
    let repo = services.repository.as_ref();
    let (apex, www) = (
        DomainName::parse("acme.example").unwrap(),
        DomainName::parse("www.acme.example").unwrap(),
    );
    let unknown = DomainName::parse("nobody.example").unwrap();
    assert_eq!(resolve_host(repo, &unknown).await.unwrap(), None);
    assert_eq!(
        resolve_host(repo, &www).await.unwrap(),
        Some(HostTarget::DomainNotReady)
    );
    repo.record_domain_check(&www, true, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        resolve_host(repo, &www).await.unwrap(),
        Some(HostTarget::DomainNotReady),
        "www waits for the apex"
    );
    let states = list(&services, &acme).await.unwrap();
    assert_eq!(states[1].readiness, Readiness::WaitingFor(apex.clone()));
    repo.record_domain_check(&apex, true, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        resolve_host(repo, &www).await.unwrap(),
        Some(HostTarget::Redirect {
            to: apex.clone(),
            status: RedirectStatus::PermanentRedirect
        })
    );
    // No production yet.
    assert_eq!(
        resolve_host(repo, &apex).await.unwrap(),
        Some(HostTarget::NoProduction)
    );
    let err = delete(&services, &acme, "acme.example", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "domain_in_use");
    assert!(err.to_string().contains("www.acme.example"), "{err}");
    delete(&services, &acme, "WWW.acme.example", None)
        .await
        .unwrap();
    assert_eq!(resolve_host(repo, &www).await.unwrap(), None);
}
