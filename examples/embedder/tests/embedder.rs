//! The three embedding tasks, from outside the workspace, with nothing but `deploystack-core`
//! and `deploystack-http` (and their re-exports):
//!
//! 1. the shout strategy, served over HTTP: an upload is built by it and its page served, and
//!    a failure carries the code it computed;
//! 2. code against the ports, unit-tested with mocks and fixtures;
//! 3. a storage decorator over what `Services` holds, under the conformance suite.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deploystack_core::Config;
use deploystack_core::events::Event;
use deploystack_core::mockall::Sequence;
use deploystack_core::mockall::predicate::eq;
use deploystack_core::model::{DeploymentId, DeploymentStatus};
use deploystack_core::repository::{MockRepository, RepositoryError};
use deploystack_core::storage::{MockStorage, ObjectStoreStorage, ObjectStream, Storage};
use deploystack_core::testing::fixtures;
use deploystack_core::tokio;
use deploystack_core::tokio::io::{AsyncReadExt, AsyncWriteExt};
use deploystack_core::tokio::net::{TcpListener, TcpStream};
use deploystack_core::tokio::sync::broadcast;
use deploystack_core::tokio_util::sync::CancellationToken;
use deploystack_embedder_example::{CountingStorage, HomePageError, ShoutStrategy, home_page};

/// Longest a build of one small file may take before the test gives up.
const BUILD_DEADLINE: Duration = Duration::from_secs(60);

/// One request on its own connection; the whole answer (head and body) as text.
async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.expect("send the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// `POST /deploy` of a zip, as a browser form would send it.
async fn upload(addr: SocketAddr, zip: &[u8]) -> String {
    let boundary = "deploystack-embedder-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /deploy HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    request(addr, &head, &body).await
}

/// The `deployment_id` of an upload's JSON answer.
fn deployment_id(answer: &str) -> DeploymentId {
    let (_, rest) = answer
        .split_once("\"deployment_id\":\"")
        .unwrap_or_else(|| panic!("no deployment_id in {answer}"));
    rest.get(..32)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no deployment id at the start of {rest}"))
}

/// The first event that ends deployment `id`: ready, or its build failing.
async fn outcome(events: &mut broadcast::Receiver<Event>, id: DeploymentId) -> Event {
    tokio::time::timeout(BUILD_DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(event @ (Event::DeploymentReady { .. } | Event::BuildFailed { .. }))
                    if event.deployment_id() == Some(id) =>
                {
                    return event;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the event stream closed"),
            }
        }
    })
    .await
    .expect("the deployment did not finish in time")
}

/// A server on port 0 with the shout strategy, stopped when the token fires.
struct Running {
    addr: SocketAddr,
    events: broadcast::Receiver<Event>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Running {
    let services = deploystack_embedder_example::services(Config::default())
        .await
        .expect("in-memory services");
    let events = services.broadcast.subscribe();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let stop = CancellationToken::new();
    let server = tokio::spawn(deploystack_embedder_example::serve(
        listener,
        services,
        stop.clone().cancelled_owned(),
    ));
    Running {
        addr,
        events,
        stop,
        server,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.server
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
    }
}

#[tokio::test(
    crate = "deploystack_core::tokio",
    flavor = "multi_thread",
    worker_threads = 2
)]
async fn an_upload_is_built_by_the_custom_strategy_and_served() {
    let mut running = start().await;
    let zip = fixtures::zip_bytes(&[("shout.txt", b"hello from outside\n")]);

    let answer = upload(running.addr, &zip).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let id = deployment_id(&answer);
    let finished = outcome(&mut running.events, id).await;
    assert!(
        matches!(finished, Event::DeploymentReady { .. }),
        "{finished:?}"
    );

    let page = request(
        running.addr,
        &format!(
            "GET /{id}/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            running.addr
        ),
        b"",
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<h1>HELLO FROM OUTSIDE</h1>"), "{page}");
    running.stop().await;
}

#[tokio::test(
    crate = "deploystack_core::tokio",
    flavor = "multi_thread",
    worker_threads = 2
)]
async fn a_failed_build_carries_the_code_the_strategy_computed() {
    let mut running = start().await;
    let zip = fixtures::zip_bytes(&[("shout.txt", b"   \n")]);

    let answer = upload(running.addr, &zip).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let id = deployment_id(&answer);
    match outcome(&mut running.events, id).await {
        Event::BuildFailed { code, .. } => assert_eq!(code, "shout_empty"),
        other => panic!("expected the build to fail, got {other:?}"),
    }
    let status = request(
        running.addr,
        &format!(
            "GET /api/v1/deployments/{id} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            running.addr
        ),
        b"",
    )
    .await;
    assert!(status.contains("\"shout_empty\""), "{status}");
    running.stop().await;
}

#[tokio::test(crate = "deploystack_core::tokio")]
async fn the_strategy_passes_the_build_conformance_suite() {
    let (dir, context) = fixtures::build_context(&[("shout.txt", b"conformance")]);
    deploystack_core::testing::build::run_all(&ShoutStrategy, context.source.root()).await;
    drop(dir);
}

/// A repository whose deployment `id` has `status` (and every other field a fixture's).
fn repository_with(id: DeploymentId, status: DeploymentStatus) -> MockRepository {
    let mut repository = MockRepository::new();
    repository
        .expect_get_deployment()
        .with(eq(id))
        .returning(move |id| Ok(fixtures::deployment(*id, status)));
    repository
}

#[tokio::test(crate = "deploystack_core::tokio")]
async fn the_home_page_of_a_ready_deployment_is_read_from_its_manifest_then_storage() {
    let page = b"<h1>hello</h1>";
    let id = DeploymentId::random();
    let file = fixtures::file_entry("index.html", page);
    let key = file.sha256.blob_key();
    // The manifest is read first, then storage: a sequence from the re-exported mockall.
    let mut order = Sequence::new();
    let mut repository = repository_with(id, DeploymentStatus::Ready);
    repository
        .expect_find_file()
        .withf(move |asked, path| *asked == id && path == "index.html")
        .times(1)
        .in_sequence(&mut order)
        .returning(move |_, _| Ok(Some(file.clone())));
    let mut storage = MockStorage::new();
    storage
        .expect_get()
        .with(eq(key))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(ObjectStream::from_bytes(&b"<h1>hello</h1>"[..])));

    let home = home_page(&repository, &storage, &id)
        .await
        .expect("home page");
    assert_eq!(home.as_deref(), Some(&page[..]));
}

#[tokio::test(crate = "deploystack_core::tokio")]
async fn a_deployment_that_is_not_live_has_no_home_page_and_storage_is_never_asked() {
    for status in [
        DeploymentStatus::Queued,
        DeploymentStatus::Building,
        DeploymentStatus::Error,
        DeploymentStatus::Canceled,
    ] {
        let id = DeploymentId::random();
        let mut repository = repository_with(id, status);
        repository.expect_find_file().never();
        // No expectations: any call to storage fails the test.
        let storage = MockStorage::new();

        let home = home_page(&repository, &storage, &id)
            .await
            .expect("no error");
        assert_eq!(home, None, "{status}");
    }
}

#[tokio::test(crate = "deploystack_core::tokio")]
async fn a_repository_outage_is_an_error_not_a_missing_page() {
    let id = DeploymentId::random();
    let mut repository = repository_with(id, DeploymentStatus::Ready);
    repository
        .expect_find_file()
        .returning(|_, _| Err(RepositoryError::Unavailable("connection refused".into())));
    let storage = MockStorage::new();

    assert!(matches!(
        home_page(&repository, &storage, &id).await,
        Err(HomePageError::Repository(RepositoryError::Unavailable(_)))
    ));
}

#[tokio::test(crate = "deploystack_core::tokio")]
async fn the_counting_decorator_over_services_storage_passes_the_storage_suite() {
    // What `Services` holds — an `Arc<dyn Storage>` — wrapped as it is.
    let services = deploystack_embedder_example::services(Config::default())
        .await
        .expect("in-memory services");
    let counting = CountingStorage::new(services.storage.clone());
    deploystack_core::testing::storage::run_all(&counting).await;
    assert!(counting.reads() > 0);

    // And decorators compose: a counter around a counter around a plain adapter.
    let inner: Arc<dyn Storage> = Arc::new(ObjectStoreStorage::memory());
    let outer = CountingStorage::new(CountingStorage::new(inner));
    deploystack_core::testing::storage::put_then_get_round_trips(&outer).await;
    assert_eq!(outer.reads(), 1);
}
