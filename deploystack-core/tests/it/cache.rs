//! The read cache over the repository: what it keeps, what it never keeps, and how changes
//! reach it — in one process against SQLite, and across two "nodes" sharing one database and
//! one Redis (feature `redis`, `REDIS_URL`).

use std::sync::Arc;
use std::time::Duration;

use deploystack_core::cache::{CacheConfig, CachedRepository};
use deploystack_core::model::{DeploymentId, DeploymentStatus, FileEntry};
use deploystack_core::repository::prelude::*;
use deploystack_core::repository::{PublishedBuild, SqliteRepository};
use deploystack_core::services::serving::{SiteError, resolve};
use deploystack_core::testing::repository::{file, new_deployment};

fn config(max_bytes: u64) -> CacheConfig {
    CacheConfig {
        max_bytes,
        ttl: Duration::from_secs(60),
    }
}

async fn sqlite() -> Arc<SqliteRepository> {
    Arc::new(SqliteRepository::connect("sqlite::memory:").await.unwrap())
}

/// Create a deployment in `repo` and claim it, as ingest and a worker would.
async fn building(repo: &dyn Repository) -> (DeploymentId, i64) {
    let id = repo.create_deployment(&new_deployment()).await.unwrap().id;
    let claim = repo
        .claim_deployment(&id, "worker", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a claim");
    (id, claim.attempt)
}

/// Publish `files` for a claimed deployment, as a worker would.
async fn publish(repo: &dyn Repository, id: &DeploymentId, attempt: i64, files: &[FileEntry]) {
    let blobs: Vec<_> = files
        .iter()
        .map(|f| deploystack_core::model::BlobRef {
            sha256: f.sha256,
            size: f.size,
        })
        .collect();
    repo.touch_blobs(&blobs).await.unwrap();
    let build = PublishedBuild {
        log: Vec::new(),
        strategy: "static".to_owned(),
        files: files.to_vec(),
        routing: None,
    };
    repo.publish(id, attempt, &build).await.unwrap();
}

/// A `READY` deployment with `index.html`, published straight into `repo`.
async fn ready(repo: &dyn Repository) -> (DeploymentId, FileEntry) {
    let (id, attempt) = building(repo).await;
    let index = file("index.html", "<h1>hello</h1>");
    publish(repo, &id, attempt, std::slice::from_ref(&index)).await;
    (id, index)
}

#[tokio::test]
async fn the_decorator_keeps_the_repository_contract() {
    let cached = CachedRepository::new(sqlite().await, config(1 << 20));
    deploystack_core::testing::repository::run_all(&cached).await;
}

#[cfg(feature = "mock")]
#[tokio::test]
async fn a_ready_deployment_is_read_from_the_repository_once() {
    use deploystack_core::repository::MockRepository;

    let inner = sqlite().await;
    let (id, index) = ready(inner.as_ref()).await;
    let record = inner.get_deployment(&id).await.unwrap();
    // The mock fails the test if the cache asks it more than once per answer.
    let mut mock = MockRepository::new();
    let answer = record.clone();
    mock.expect_get_deployment()
        .times(1)
        .returning(move |_| Ok(answer.clone()));
    let entry = index.clone();
    mock.expect_find_file()
        .withf(|_, path| path == "index.html")
        .times(1)
        .returning(move |_, _| Ok(Some(entry.clone())));
    mock.expect_find_file()
        .withf(|_, path| path == "missing.html")
        .times(1)
        .returning(|_, _| Ok(None));
    let cached = CachedRepository::new(Arc::new(mock), config(1 << 20));

    for _ in 0..2 {
        assert_eq!(cached.get_deployment(&id).await.unwrap(), record);
        assert_eq!(
            cached.find_file(&id, "index.html").await.unwrap(),
            Some(index.clone())
        );
        assert_eq!(cached.find_file(&id, "missing.html").await.unwrap(), None);
    }

    let stats = cached.stats();
    assert_eq!((stats.local_hits, stats.local_misses), (3, 3));
    assert_eq!(stats.hit_rate(), Some(0.5));
}

#[tokio::test]
async fn queued_and_building_deployments_are_never_served_from_the_cache() {
    let inner = sqlite().await;
    let cached = CachedRepository::new(inner.clone(), config(1 << 20));
    let id = inner.create_deployment(&new_deployment()).await.unwrap().id;
    for _ in 0..2 {
        let seen = cached.get_deployment(&id).await.unwrap();
        assert_eq!(seen.status, DeploymentStatus::Queued);
    }

    // A worker elsewhere claims and publishes, without telling this cache.
    let claim = inner
        .claim_deployment(&id, "elsewhere", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a claim");
    assert_eq!(
        cached.get_deployment(&id).await.unwrap().status,
        DeploymentStatus::Building
    );
    assert_eq!(
        cached.find_file(&id, "index.html").await.unwrap(),
        None,
        "nothing is published yet"
    );
    let index = file("index.html", "<h1>now</h1>");
    publish(
        inner.as_ref(),
        &id,
        claim.attempt,
        std::slice::from_ref(&index),
    )
    .await;

    assert_eq!(
        cached.get_deployment(&id).await.unwrap().status,
        DeploymentStatus::Ready
    );
    assert_eq!(
        cached.find_file(&id, "index.html").await.unwrap(),
        Some(index),
        "a lookup made while BUILDING was kept"
    );
    let stats = cached.stats();
    assert_eq!(stats.local_hits, 0, "{stats:?}");
    // From now on the deployment is settled and served from memory.
    cached.get_deployment(&id).await.unwrap();
    assert_eq!(cached.stats().local_hits, 1);
}

#[tokio::test]
async fn a_delete_through_the_cache_is_seen_at_once() {
    let inner = sqlite().await;
    let cached = CachedRepository::new(inner.clone(), config(1 << 20));
    let (id, index) = ready(inner.as_ref()).await;
    for _ in 0..2 {
        assert!(
            cached
                .get_deployment(&id)
                .await
                .unwrap()
                .deleted_at
                .is_none()
        );
        assert_eq!(
            cached.find_file(&id, "index.html").await.unwrap(),
            Some(index.clone())
        );
    }

    cached.delete_deployment(&id).await.unwrap();

    assert!(
        cached
            .get_deployment(&id)
            .await
            .unwrap()
            .deleted_at
            .is_some()
    );
    assert_eq!(cached.find_file(&id, "index.html").await.unwrap(), None);
    assert!(matches!(
        resolve(&cached, &id, "").await,
        Err(SiteError::Deleted)
    ));
}

#[tokio::test]
async fn the_byte_budget_is_respected() {
    const BUDGET: u64 = 32 * 1024;
    let inner = sqlite().await;
    let cached = CachedRepository::new(inner.clone(), config(BUDGET));
    let (id, _) = ready(inner.as_ref()).await;
    // Each lookup is its own "no such file" entry of a few hundred bytes.
    for n in 0..1000 {
        let path = format!("{}/{n}.html", "deep/".repeat(40));
        assert_eq!(cached.find_file(&id, &path).await.unwrap(), None);
    }

    let stats = cached.stats();
    assert!(stats.local_bytes <= BUDGET, "{stats:?}");
    assert!(stats.local_entries > 0, "{stats:?}");
    assert!(stats.local_entries < 1000, "nothing was evicted: {stats:?}");
}

#[cfg(feature = "redis")]
mod shared {
    //! Two nodes, one database, one Redis.

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use deploystack_core::testing::env::{redis_url, unique_name};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use super::*;
    use crate::support::DEADLINE;

    async fn node(inner: Arc<dyn Repository>, url: &str, prefix: &str) -> CachedRepository {
        CachedRepository::with_redis(inner, config(1 << 20), url, prefix)
            .await
            .unwrap()
    }

    /// Poll `check` until it holds or the deadline passes.
    async fn eventually<F, Fut>(what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let give_up = Instant::now() + DEADLINE;
        while !check().await {
            assert!(Instant::now() < give_up, "{what} did not happen in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_decorator_keeps_the_repository_contract_with_redis() {
        let Some(url) = redis_url() else { return };
        let cached = node(sqlite().await, &url, &unique_name("cache")).await;
        deploystack_core::testing::repository::run_all(&cached).await;
    }

    #[tokio::test]
    async fn a_delete_on_one_node_reaches_the_other_and_cold_nodes_read_the_shared_layer() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_name("cache");
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("shared.db").display());
        let inner_a = Arc::new(SqliteRepository::connect(&database).await.unwrap());
        let inner_b = Arc::new(SqliteRepository::connect(&database).await.unwrap());
        let a = node(inner_a.clone(), &url, &prefix).await;
        let b = node(inner_b, &url, &prefix).await;
        // A worker publishes straight into the database.
        let (id, index) = ready(inner_a.as_ref()).await;

        // Node A reads first: from the database, filling both layers.
        let record = a.get_deployment(&id).await.unwrap();
        assert_eq!(
            a.find_file(&id, "index.html").await.unwrap(),
            Some(index.clone())
        );
        let stats = a.stats();
        assert_eq!(
            (stats.shared_hits, stats.shared_misses),
            (0, 2),
            "{stats:?}"
        );

        // Node B starts cold and is answered by the shared layer.
        assert_eq!(b.get_deployment(&id).await.unwrap(), record);
        assert_eq!(b.find_file(&id, "index.html").await.unwrap(), Some(index));
        let stats = b.stats();
        assert_eq!((stats.local_misses, stats.shared_hits), (2, 2), "{stats:?}");

        // Node B deletes; node A hears of it, though its own entry would live for a minute.
        b.delete_deployment(&id).await.unwrap();
        assert_eq!(b.stats().invalidations_sent, 1);
        eventually("node A seeing the delete", || async {
            a.get_deployment(&id).await.unwrap().deleted_at.is_some()
        })
        .await;
        assert_eq!(a.find_file(&id, "index.html").await.unwrap(), None);
        let stats = a.stats();
        assert_eq!(stats.invalidations_received, 1, "{stats:?}");
        assert_eq!(stats.shared_errors, 0, "{stats:?}");
    }

    #[tokio::test]
    async fn a_node_that_lost_its_subscription_serves_nothing_stale_and_starts_over() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_name("cache");
        let proxy = Proxy::start(&url).await;
        let inner: Arc<SqliteRepository> = sqlite().await;
        let a = node(inner.clone(), &proxy.url, &prefix).await;
        let b = node(inner.clone(), &url, &prefix).await;
        let (id, _) = ready(inner.as_ref()).await;
        a.get_deployment(&id).await.unwrap();
        a.get_deployment(&id).await.unwrap();
        assert_eq!(a.stats().local_hits, 1);

        // Node A's connections drop and stay down while node B deletes: A misses the message.
        proxy.go_down();
        b.delete_deployment(&id).await.unwrap();
        eventually(
            "node A seeing the delete without its subscription",
            || async { a.get_deployment(&id).await.unwrap().deleted_at.is_some() },
        )
        .await;

        // Back up: node A subscribes again, empties its cache and uses it again.
        proxy.come_back();
        eventually("node A resubscribing", || async { a.stats().resyncs >= 1 }).await;
        let hits = a.stats().local_hits;
        for _ in 0..2 {
            assert!(a.get_deployment(&id).await.unwrap().deleted_at.is_some());
        }
        assert_eq!(a.stats().local_hits, hits + 1, "{:?}", a.stats());
    }

    /// With Redis unreachable the cache's breaker opens: reads go straight to the database
    /// without waiting on Redis, and once Redis is back a read after the cool-down is the
    /// probe that closes the breaker again.
    #[tokio::test]
    async fn with_redis_down_the_breaker_sends_reads_to_the_database_until_redis_is_back() {
        use deploystack_core::breaker::{Breaker, BreakerSettings, BreakerState};
        let Some(url) = redis_url() else { return };
        let proxy = Proxy::start(&url).await;
        let inner: Arc<SqliteRepository> = sqlite().await;
        let cooldown = Duration::from_millis(300);
        let breaker = Arc::new(Breaker::new(
            "cache",
            BreakerSettings {
                failure_percent: 50,
                min_calls: 2,
                window: Duration::from_secs(30),
                cooldown,
            },
        ));
        let node = node(inner.clone(), &proxy.url, &unique_name("cache"))
            .await
            .with_breaker(breaker.clone());

        proxy.go_down();
        // Every read is of a deployment the node has not seen, so each would ask Redis.
        let give_up = Instant::now() + DEADLINE;
        while breaker.state() != BreakerState::Open {
            assert!(Instant::now() < give_up, "the breaker did not open");
            let (id, _) = ready(inner.as_ref()).await;
            assert_eq!(node.get_deployment(&id).await.unwrap().id, id);
        }
        let refused = breaker.stats().refused;
        let (id, _) = ready(inner.as_ref()).await;
        assert_eq!(
            node.get_deployment(&id).await.unwrap().id,
            id,
            "served by the database"
        );
        assert!(
            breaker.stats().refused > refused,
            "Redis was asked while the breaker was open: {:?}",
            breaker.stats()
        );

        proxy.come_back();
        tokio::time::sleep(cooldown).await;
        let give_up = Instant::now() + DEADLINE;
        while breaker.state() != BreakerState::Closed {
            assert!(
                Instant::now() < give_up,
                "the breaker did not close: {:?}",
                breaker.stats()
            );
            let (id, _) = ready(inner.as_ref()).await;
            node.get_deployment(&id).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(breaker.stats().closed >= 1, "{:?}", breaker.stats());
    }

    /// A TCP proxy in front of Redis that a test can cut, the way a network failure would.
    struct Proxy {
        /// The Redis URL through the proxy.
        url: String,
        /// Bumped to drop every open connection.
        cut: Arc<watch::Sender<u64>>,
        /// While false, new connections are closed at once.
        up: Arc<AtomicBool>,
    }

    impl Proxy {
        async fn start(redis_url: &str) -> Proxy {
            let rest = redis_url
                .strip_prefix("redis://")
                .expect("REDIS_URL is redis://…");
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (credentials, target) = match authority.rsplit_once('@') {
                Some((credentials, target)) => (format!("{credentials}@"), target.to_owned()),
                None => (String::new(), authority.to_owned()),
            };
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            let cut = Arc::new(watch::channel(0u64).0);
            let up = Arc::new(AtomicBool::new(true));
            let (cuts, running) = (cut.clone(), up.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !running.load(Ordering::SeqCst) {
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            });
            Proxy {
                url: format!("redis://{credentials}{addr}/{path}"),
                cut,
                up,
            }
        }

        fn go_down(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.cut.send_modify(|n| *n += 1);
        }

        fn come_back(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    /// A domain verified, redirected or deleted through one node is seen by the other at
    /// once, "no such domain" included; deleting the project evicts its domains everywhere.
    #[tokio::test]
    async fn domain_changes_on_one_node_reach_the_other() {
        use deploystack_core::domains::{DomainName, VerificationToken};
        use deploystack_core::model::{NewDomain, NewProject, ProjectName};
        use deploystack_core::repository::RepositoryError;

        let Some(url) = redis_url() else { return };
        let prefix = unique_name("cache");
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("shared.db").display());
        let a = node(
            Arc::new(SqliteRepository::connect(&database).await.unwrap()),
            &url,
            &prefix,
        )
        .await;
        let b = node(
            Arc::new(SqliteRepository::connect(&database).await.unwrap()),
            &url,
            &prefix,
        )
        .await;
        let project: ProjectName = "cached-domains".parse().unwrap();
        b.create_project(&NewProject {
            name: project.clone(),
            build_settings: Default::default(),
            retention: Default::default(),
        })
        .await
        .unwrap();
        let name = DomainName::parse("www.cached.example").unwrap();

        // Node A caches "no such domain"; node B adds it.
        assert!(matches!(
            a.get_domain(&name).await,
            Err(RepositoryError::NotFound)
        ));
        b.create_domain(&NewDomain {
            name: name.clone(),
            project: project.clone(),
            redirect: None,
            redirect_status: None,
            token: VerificationToken::generate(),
            first_check_in: Duration::from_secs(60),
        })
        .await
        .unwrap();
        eventually("node A seeing the new domain", || async {
            a.get_domain(&name).await.is_ok()
        })
        .await;
        // Node A caches it unverified; node B verifies it.
        assert!(!a.get_domain(&name).await.unwrap().is_verified());
        b.record_domain_check(&name, true, Duration::ZERO)
            .await
            .unwrap();
        eventually("node A seeing the verification", || async {
            a.get_domain(&name).await.unwrap().is_verified()
        })
        .await;
        // Node B deletes the project; its domains go with it on node A too.
        b.delete_project(&project).await.unwrap();
        eventually("node A seeing the domain go", || async {
            matches!(a.get_domain(&name).await, Err(RepositoryError::NotFound))
        })
        .await;
        assert_eq!(a.stats().shared_errors, 0);
    }
}

/// A mock that answers `record` for the deployment and "no such file" for every lookup but
/// `files`, counting the lookups it was asked.
#[cfg(feature = "mock")]
fn counting_mock(
    record: deploystack_core::model::Deployment,
    files: Vec<FileEntry>,
) -> (
    deploystack_core::repository::MockRepository,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut mock = deploystack_core::repository::MockRepository::new();
    mock.expect_get_deployment()
        .returning(move |_| Ok(record.clone()));
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&lookups);
    mock.expect_find_file().returning(move |_, path| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(files.iter().find(|f| f.path == path).cloned())
    });
    (mock, lookups)
}

#[cfg(feature = "mock")]
#[tokio::test]
async fn a_warm_resolution_asks_the_repository_for_the_record_only() {
    use std::sync::atomic::Ordering;

    use deploystack_core::services::serving::{ResolutionCache, ResolutionCacheConfig};
    use deploystack_core::services::serving::{Resolved, resolve_cached, resolve_routed};

    let inner = sqlite().await;
    let (id, index) = ready(inner.as_ref()).await;
    let record = inner.get_deployment(&id).await.unwrap();
    let (mock, lookups) = counting_mock(record, vec![index.clone()]);
    let resolutions = ResolutionCache::new(ResolutionCacheConfig {
        max_bytes: 1 << 20,
        ttl: Duration::from_secs(60),
    });

    for path in ["", "no/such/file.html", "index.html"] {
        let first = resolve_cached(&mock, &resolutions, &id, path)
            .await
            .unwrap();
        let asked = lookups.load(Ordering::SeqCst);
        assert!(asked > 0, "{path:?}: the first resolution routes");
        for _ in 0..3 {
            let again = resolve_cached(&mock, &resolutions, &id, path)
                .await
                .unwrap();
            assert_eq!(again, first, "{path:?}");
        }
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            asked,
            "{path:?}: a warm resolution asked the manifest again"
        );
        assert_eq!(
            *first,
            resolve_routed(&mock, &id, path).await.unwrap(),
            "{path:?}: the cached answer is the routed one"
        );
        lookups.store(0, Ordering::SeqCst);
    }
    let not_found = resolve_cached(&mock, &resolutions, &id, "no/such/file.html")
        .await
        .unwrap();
    assert_eq!(not_found.resolved, Resolved::NotFound(None));
    assert_eq!(resolutions.stats().entries, 3);
}

#[cfg(feature = "mock")]
#[tokio::test]
async fn a_disabled_resolution_cache_routes_every_time() {
    use std::sync::atomic::Ordering;

    use deploystack_core::services::serving::ResolutionCache;
    use deploystack_core::services::serving::{Resolved, resolve_cached, resolve_routed};

    let inner = sqlite().await;
    let (id, index) = ready(inner.as_ref()).await;
    let record = inner.get_deployment(&id).await.unwrap();
    let (mock, lookups) = counting_mock(record, vec![index.clone()]);
    let resolutions = ResolutionCache::disabled();

    let first = resolve_cached(&mock, &resolutions, &id, "missing")
        .await
        .unwrap();
    let asked = lookups.load(Ordering::SeqCst);
    let second = resolve_cached(&mock, &resolutions, &id, "missing")
        .await
        .unwrap();
    assert_eq!(lookups.load(Ordering::SeqCst), 2 * asked);
    assert_eq!(first, second);
    assert_eq!(first.resolved, Resolved::NotFound(None));
    assert!(matches!(
        &resolve_cached(&mock, &resolutions, &id, "").await.unwrap().resolved,
        Resolved::File { file, .. } if *file == index
    ));
    assert_eq!(
        *resolve_cached(&mock, &resolutions, &id, "").await.unwrap(),
        resolve_routed(&mock, &id, "").await.unwrap()
    );
}

#[tokio::test]
async fn a_deleted_deployment_answers_deleted_despite_cached_resolutions() {
    use deploystack_core::services::serving::resolve_cached;
    use deploystack_core::services::serving::{
        ResolutionCache, ResolutionCacheConfig, ResolutionKey,
    };

    let resolutions = ResolutionCache::new(ResolutionCacheConfig {
        max_bytes: 1 << 20,
        ttl: Duration::from_secs(60),
    });
    // Through the read cache, as served, and straight against the database, where no read
    // cache evicts anything: the record, read first, is what tells.
    let cached = CachedRepository::new(sqlite().await, config(1 << 20));
    let uncached = sqlite().await;
    let repositories: [&dyn Repository; 2] = [&cached, uncached.as_ref()];
    for repo in repositories {
        let (id, _) = ready(repo).await;
        for path in ["", "missing.html", "a/b/"] {
            for _ in 0..2 {
                resolve_cached(repo, &resolutions, &id, path).await.unwrap();
            }
        }
        assert!(resolutions.get(&ResolutionKey::new(&id, "")).is_some());
        repo.delete_deployment(&id).await.unwrap();
        for path in ["", "missing.html", "a/b/"] {
            assert!(
                matches!(
                    resolve_cached(repo, &resolutions, &id, path).await,
                    Err(SiteError::Deleted)
                ),
                "{path:?}"
            );
        }
    }
}

/// A project is kept in memory for project hosts, and a production move made through the
/// decorator — a promote, or the publish of a production deployment — evicts it at once.
#[tokio::test]
async fn a_cached_project_is_evicted_by_every_production_move() {
    use deploystack_core::model::{
        BuildSettings, NewProject, ProductionReason, ProjectName, Retention, Target,
    };

    let inner = sqlite().await;
    let cached = CachedRepository::new(inner.clone(), config(1 << 20));
    let name: ProjectName = "cached".parse().unwrap();
    cached
        .create_project(&NewProject {
            name: name.clone(),
            build_settings: BuildSettings::default(),
            retention: Retention::default(),
        })
        .await
        .unwrap();
    async fn production_of(repo: &CachedRepository) -> Option<DeploymentId> {
        let name: ProjectName = "cached".parse().unwrap();
        repo.get_project(&name)
            .await
            .unwrap()
            .production
            .map(|p| p.deployment_id)
    }
    assert_eq!(production_of(&cached).await, None);
    let hits = cached.stats().local_hits;
    assert_eq!(production_of(&cached).await, None);
    assert_eq!(
        cached.stats().local_hits,
        hits + 1,
        "the second read is a hit"
    );

    // A production deployment published through the decorator takes production.
    let mut new = new_deployment();
    new.project = Some(name.clone());
    new.target = Target::Production;
    let first = cached.create_deployment(&new).await.unwrap().id;
    let attempt = cached
        .claim_deployment(&first, "worker", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap()
        .attempt;
    publish(&cached, &first, attempt, &[file("index.html", "first")]).await;
    assert_eq!(production_of(&cached).await, Some(first));

    // A promote through the decorator is seen at once.
    let mut new = new_deployment();
    new.project = Some(name.clone());
    let second = cached.create_deployment(&new).await.unwrap().id;
    let attempt = cached
        .claim_deployment(&second, "worker", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap()
        .attempt;
    publish(&cached, &second, attempt, &[file("index.html", "second")]).await;
    assert_eq!(
        production_of(&cached).await,
        Some(first),
        "a preview moves nothing"
    );
    cached
        .move_production(&name, &second, ProductionReason::Promote, None)
        .await
        .unwrap();
    assert_eq!(production_of(&cached).await, Some(second));
}
