//! The custom domains part of the `Repository` conformance suite: uniqueness across
//! projects, redirects, checks (sticky verification), claims of due domains that no two
//! callers share, and domains going with their project. Every check uses random names, so
//! it runs against a database in use: claims are only asserted about this check's domains.

use std::time::Duration;

use futures_util::future::join_all;

use crate::domains::{DomainName, RedirectStatus, VerificationToken};
use crate::model::{DeploymentId, NewDomain, NewProject, ProjectName};
use crate::repository::{Repository, RepositoryError};

/// Run every domains check.
pub async fn run_domains(repo: &dyn Repository) {
    domains_are_created_read_listed_and_unique(repo).await;
    redirects_are_set_and_cleared(repo).await;
    checks_count_and_verification_sticks(repo).await;
    due_domains_are_claimed_once(repo).await;
    domains_go_with_their_project(repo).await;
}

fn random_domain(label: &str) -> DomainName {
    let id = DeploymentId::random().to_string();
    DomainName::parse(&format!("{label}.d{}.example", &id[..12])).expect("a valid domain")
}

async fn project(repo: &dyn Repository) -> ProjectName {
    let id = DeploymentId::random().to_string();
    let name: ProjectName = format!("dom-{}", &id[..12])
        .parse()
        .expect("a valid project name");
    repo.create_project(&NewProject {
        name: name.clone(),
        build_settings: Default::default(),
        retention: Default::default(),
    })
    .await
    .expect("create_project failed");
    name
}

fn new_domain(project: &ProjectName, name: &DomainName, first_check_in: Duration) -> NewDomain {
    NewDomain {
        name: name.clone(),
        project: project.clone(),
        redirect: None,
        redirect_status: None,
        token: VerificationToken::generate(),
        first_check_in,
    }
}

const LATER: Duration = Duration::from_secs(3600);

/// Create, get, list in name order; a name any project has is `Conflict` (without naming
/// the other project); an unknown project is `NotFound`.
pub async fn domains_are_created_read_listed_and_unique(repo: &dyn Repository) {
    let project = project(repo).await;
    let other = self::project(repo).await;
    let www = random_domain("www");
    let apex = DomainName::parse(www.as_str().trim_start_matches("www.")).expect("apex");
    let new = new_domain(&project, &www, LATER);
    let created = repo.create_domain(&new).await.expect("create_domain");
    assert_eq!(created.name, www);
    assert_eq!(created.project, project);
    assert_eq!(created.token, new.token);
    assert_eq!(created.verified_at, None);
    assert_eq!(created.check_attempts, 0);
    assert!(
        created
            .next_check_at
            .is_some_and(|at| at > created.created_at)
    );
    assert_eq!(repo.get_domain(&www).await.expect("get_domain"), created);
    repo.create_domain(&new_domain(&project, &apex, LATER))
        .await
        .expect("create_domain");
    let listed: Vec<DomainName> = repo
        .list_domains(&project)
        .await
        .expect("list_domains")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(listed, [apex.clone(), www.clone()]);

    let taken = repo.create_domain(&new_domain(&other, &www, LATER)).await;
    assert!(
        matches!(&taken, Err(RepositoryError::Conflict(m)) if !m.contains(project.as_str())),
        "{taken:?}"
    );
    assert!(repo.list_domains(&other).await.expect("list").is_empty());
    let unknown: ProjectName = "no-such-project-for-domains".parse().expect("name");
    let orphan = repo
        .create_domain(&new_domain(&unknown, &random_domain("x"), LATER))
        .await;
    assert!(
        matches!(orphan, Err(RepositoryError::NotFound)),
        "{orphan:?}"
    );
    assert!(matches!(
        repo.get_domain(&random_domain("none")).await,
        Err(RepositoryError::NotFound)
    ));
}

/// A redirect and its status are stored, 308 when none is given, and cleared together.
pub async fn redirects_are_set_and_cleared(repo: &dyn Repository) {
    let project = project(repo).await;
    let apex = random_domain("apex");
    let www = random_domain("www");
    repo.create_domain(&new_domain(&project, &apex, LATER))
        .await
        .expect("create");
    let created = repo
        .create_domain(&NewDomain {
            redirect: Some(apex.clone()),
            ..new_domain(&project, &www, LATER)
        })
        .await
        .expect("create with a redirect");
    assert_eq!(created.redirect.as_ref(), Some(&apex));
    assert_eq!(
        created.redirect_status,
        Some(RedirectStatus::PermanentRedirect)
    );
    let changed = repo
        .set_domain_redirect(&www, Some(apex.clone()), Some(RedirectStatus::Found))
        .await
        .expect("set_domain_redirect");
    assert_eq!(changed.redirect_status, Some(RedirectStatus::Found));
    assert_eq!(repo.get_domain(&www).await.expect("get"), changed);
    let cleared = repo
        .set_domain_redirect(&www, None, Some(RedirectStatus::Found))
        .await
        .expect("clear");
    assert_eq!((cleared.redirect, cleared.redirect_status), (None, None));
    assert!(matches!(
        repo.set_domain_redirect(&random_domain("none"), None, None)
            .await,
        Err(RepositoryError::NotFound)
    ));
}

/// Each check counts; a failed one sets the next check, a successful one verifies and ends
/// the checks; later failures never unverify.
pub async fn checks_count_and_verification_sticks(repo: &dyn Repository) {
    let project = project(repo).await;
    let name = random_domain("check");
    let created = repo
        .create_domain(&new_domain(&project, &name, LATER))
        .await
        .expect("create");
    let missed = repo
        .record_domain_check(&name, false, Duration::from_secs(7200))
        .await
        .expect("record a miss");
    assert_eq!(missed.check_attempts, 1);
    assert_eq!(missed.verified_at, None);
    assert!(
        missed
            .next_check_at
            .is_some_and(|at| at > created.next_check_at.expect("due"))
    );
    let found = repo
        .record_domain_check(&name, true, LATER)
        .await
        .expect("record a find");
    assert_eq!(found.check_attempts, 2);
    let verified_at = found.verified_at.expect("verified");
    assert_eq!(found.next_check_at, None);
    let later = repo
        .record_domain_check(&name, false, LATER)
        .await
        .expect("record a miss after");
    assert_eq!(later.verified_at, Some(verified_at));
    assert_eq!(later.next_check_at, None);
    assert!(matches!(
        repo.record_domain_check(&random_domain("none"), true, LATER)
            .await,
        Err(RepositoryError::NotFound)
    ));
}

/// A due domain is handed out once, then not again until its hold runs out; domains not
/// due and verified domains are never handed out; racing claims share nothing.
pub async fn due_domains_are_claimed_once(repo: &dyn Repository) {
    let project = project(repo).await;
    let due: Vec<DomainName> = (0..6).map(|n| random_domain(&format!("due{n}"))).collect();
    for name in &due {
        repo.create_domain(&new_domain(&project, name, Duration::ZERO))
            .await
            .expect("create");
    }
    let later = random_domain("later");
    repo.create_domain(&new_domain(&project, &later, LATER))
        .await
        .expect("create");
    let verified = random_domain("verified");
    repo.create_domain(&new_domain(&project, &verified, Duration::ZERO))
        .await
        .expect("create");
    repo.record_domain_check(&verified, true, Duration::ZERO)
        .await
        .expect("verify");
    tokio::time::sleep(Duration::from_millis(15)).await;

    let claims = join_all((0..3).map(|_| repo.claim_due_domains(1000, LATER))).await;
    let mut seen: Vec<DomainName> = Vec::new();
    for claim in claims {
        for domain in claim.expect("claim_due_domains") {
            if domain.project == project {
                assert!(
                    !seen.contains(&domain.name),
                    "{} claimed twice",
                    domain.name
                );
                seen.push(domain.name);
            }
        }
    }
    seen.sort();
    let mut expected = due.clone();
    expected.sort();
    assert_eq!(seen, expected, "every due domain once, nothing else");
    let again = repo.claim_due_domains(1000, LATER).await.expect("claim");
    assert!(
        again.iter().all(|d| d.project != project),
        "held: {again:?}"
    );

    // A failed check due at once makes it claimable again.
    repo.record_domain_check(&due[0], false, Duration::ZERO)
        .await
        .expect("record");
    tokio::time::sleep(Duration::from_millis(15)).await;
    let again = repo.claim_due_domains(1000, LATER).await.expect("claim");
    let mine: Vec<&DomainName> = again
        .iter()
        .filter(|d| d.project == project)
        .map(|d| &d.name)
        .collect();
    assert_eq!(mine, [&due[0]]);
}

/// Deleting a domain frees its name; deleting a project deletes its domains.
pub async fn domains_go_with_their_project(repo: &dyn Repository) {
    let project = project(repo).await;
    let name = random_domain("gone");
    repo.create_domain(&new_domain(&project, &name, LATER))
        .await
        .expect("create");
    repo.delete_domain(&name).await.expect("delete_domain");
    assert!(matches!(
        repo.delete_domain(&name).await,
        Err(RepositoryError::NotFound)
    ));
    repo.create_domain(&new_domain(&project, &name, LATER))
        .await
        .expect("the name is free again");
    repo.delete_project(&project).await.expect("delete_project");
    assert!(matches!(
        repo.get_domain(&name).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(repo.list_domains(&project).await.expect("list").is_empty());
    let other = self::project(repo).await;
    repo.create_domain(&new_domain(&other, &name, LATER))
        .await
        .expect("another project may take it now");
}
