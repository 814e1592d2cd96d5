//! The API tokens part of the `Repository` conformance suite: tokens round-trip without
//! their secret, are found by the hash of it (and only by that), revoke at once, and record
//! their use at most once per granularity. Every check makes its own random tokens, so it
//! runs against a database in use.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{NewToken, Scope, TokenId, TokenSecret};
use crate::repository::{Repository, RepositoryError};

/// Run every tokens check.
pub async fn run_tokens(repo: &dyn Repository) {
    tokens_round_trip_and_are_found_by_their_hash(repo).await;
    revoked_tokens_are_gone(repo).await;
    use_is_recorded_at_most_once_per_granularity(repo).await;
}

fn new_token(secret: &TokenSecret, projects: Option<Vec<&str>>) -> NewToken {
    NewToken {
        id: TokenId::random(),
        name: format!("ci {}", TokenId::random()),
        scopes: vec![Scope::Read, Scope::Deploy],
        projects: projects.map(|names| {
            names
                .into_iter()
                .map(|name| name.parse().expect("a valid project name"))
                .collect()
        }),
        hash: secret.hash(),
        // Whole seconds: every adapter stores at least millisecond precision.
        expires_at: Some(
            OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp() + 3600)
                .expect("a valid time"),
        ),
    }
}

/// What is stored comes back — from `create_token`, `find_token` and `list_tokens` —
/// and a hash of anything else finds nothing.
pub async fn tokens_round_trip_and_are_found_by_their_hash(repo: &dyn Repository) {
    let secret = TokenSecret::generate();
    let new = new_token(&secret, Some(vec!["site", "docs"]));
    let created = repo.create_token(&new).await.expect("create_token failed");
    assert_eq!(created.id, new.id);
    assert_eq!(created.name, new.name);
    assert_eq!(created.scopes, new.scopes);
    assert_eq!(created.projects, new.projects);
    assert_eq!(created.expires_at, new.expires_at);
    assert_eq!(created.last_used_at, None);
    assert!(created.hash.matches(&secret.hash()));

    let found = repo
        .find_token(&secret.hash())
        .await
        .expect("find_token failed");
    assert_eq!(found, created);
    assert!(
        repo.list_tokens()
            .await
            .expect("list_tokens failed")
            .contains(&created)
    );
    let other = TokenSecret::generate();
    assert!(matches!(
        repo.find_token(&other.hash()).await,
        Err(RepositoryError::NotFound)
    ));

    let unlimited = TokenSecret::generate();
    let mut new = new_token(&unlimited, None);
    new.expires_at = None;
    let created = repo.create_token(&new).await.expect("create_token failed");
    assert_eq!(created.projects, None);
    assert_eq!(created.expires_at, None);
    assert_eq!(
        repo.find_token(&unlimited.hash()).await.expect("find"),
        created
    );
}

/// A revoked token is found no more, and revoking it again is `NotFound`.
pub async fn revoked_tokens_are_gone(repo: &dyn Repository) {
    let secret = TokenSecret::generate();
    let created = repo
        .create_token(&new_token(&secret, None))
        .await
        .expect("create_token failed");
    repo.revoke_token(&created.id)
        .await
        .expect("revoke_token failed");
    assert!(matches!(
        repo.find_token(&secret.hash()).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(
        !repo
            .list_tokens()
            .await
            .expect("list_tokens failed")
            .iter()
            .any(|token| token.id == created.id)
    );
    assert!(matches!(
        repo.revoke_token(&created.id).await,
        Err(RepositoryError::NotFound)
    ));
    // Touching a revoked token is no error: a request may race the revoke.
    repo.touch_token(&created.id, Duration::from_secs(60))
        .await
        .expect("touch_token of a revoked token failed");
}

/// The first use is recorded; another within the granularity is not; one after it is.
pub async fn use_is_recorded_at_most_once_per_granularity(repo: &dyn Repository) {
    let secret = TokenSecret::generate();
    let created = repo
        .create_token(&new_token(&secret, None))
        .await
        .expect("create_token failed");
    let last_used = || async {
        repo.find_token(&secret.hash())
            .await
            .expect("find_token failed")
            .last_used_at
    };
    repo.touch_token(&created.id, Duration::from_secs(60))
        .await
        .expect("touch_token failed");
    let first = last_used().await.expect("the first use is recorded");
    tokio::time::sleep(Duration::from_millis(15)).await;
    repo.touch_token(&created.id, Duration::from_secs(60))
        .await
        .expect("touch_token failed");
    assert_eq!(last_used().await, Some(first), "a use within the minute");
    repo.touch_token(&created.id, Duration::from_millis(1))
        .await
        .expect("touch_token failed");
    let later = last_used().await.expect("still recorded");
    assert!(later > first, "a use after the granularity moves it");
}
