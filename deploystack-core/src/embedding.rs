//! # Embedding DeployStack in your own program
//!
//! This module holds no code: it is the guide to the three things people embedding
//! `deploystack-core` do first. Each example below is compiled and run as a test of this
//! crate (the first one in `deploystack-http`, which it needs), and the package
//! `examples/embedder/` of the repository does all three from outside the workspace, the way
//! your crate will.
//!
//! ## Your `Cargo.toml`
//! ```toml
//! [dependencies]
//! deploystack-core = "0.1"
//! deploystack-http = "0.1"    # only to serve over HTTP
//!
//! [dev-dependencies]
//! deploystack-core = { version = "0.1", features = ["mock", "testing"] }
//! ```
//! Nothing else: what you need from `async-trait`, `bytes`, `futures-util`, `object_store`,
//! `time`, `tokio`, `tokio-util` and (with `mock`) `mockall` is re-exported at the crate
//! root, in the versions this crate uses. Tokio's macros must be told so:
//! `#[tokio::main(crate = "deploystack_core::tokio")]`.
//!
//! To compile less, turn off what you do not use: `deploystack-core` with
//! `default-features = false` has no SQLite (bring your own repository), and
//! `deploystack-http` with `default-features = false` has neither the server binary's
//! command-line parser nor its log setup (add `features = ["sqlite"]` to keep SQLite).
//!
//! ## 1. A build strategy of your own, served over HTTP
//! Implement [`BuildStrategy`](crate::build::BuildStrategy), register it with
//! [`Services::with_strategy`](crate::Services::with_strategy) (it is asked before the
//! built-in presets), and serve with `deploystack_http::serve`, which also runs the build
//! workers in-process. Fail a build with [`BuildError::failed`](crate::build::BuildError::failed):
//! the code may be computed at run time and becomes the deployment's `error.code`.
//!
//! ```rust,ignore
//! use std::sync::Arc;
//! use deploystack_core::async_trait;
//! use deploystack_core::build::{BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree};
//! use deploystack_core::{Config, Services};
//!
//! struct Shout;
//!
//! #[async_trait]
//! impl BuildStrategy for Shout {
//!     fn name(&self) -> &str { "shout" }
//!     async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
//!         Ok(source.has_file("shout.txt").then(|| Detection {
//!             strategy: "shout".into(),
//!             reason: "shout.txt found".into(),
//!         }))
//!     }
//!     async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
//!         let text = std::fs::read_to_string(ctx.source.root().join("shout.txt"))?;
//!         let out = ctx.work_dir.join("out");
//!         std::fs::create_dir_all(&out)?;
//!         std::fs::write(out.join("index.html"), format!("<h1>{}</h1>", text.to_uppercase()))?;
//!         Ok(BuildOutput { dir: out })
//!     }
//! }
//!
//! #[deploystack_core::tokio::main(crate = "deploystack_core::tokio")]
//! async fn main() -> std::io::Result<()> {
//!     let services = Services::in_memory(Config::default()).await.map_err(std::io::Error::other)?
//!         .with_strategy(Arc::new(Shout));
//!     let listener = deploystack_core::tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     deploystack_http::serve(listener, services, async {
//!         let _ = deploystack_core::tokio::signal::ctrl_c().await;
//!     })
//!     .await
//! }
//! ```
//!
//! ## 2. Unit tests against mocked ports
//! With the `mock` feature every port has a mockall mock (`MockRepository`, `MockStorage`,
//! `MockQueue`, `MockBuildStrategy`, `MockEventSink`), and with `testing` the
//! `testing::fixtures` make the values their expectations return in one line;
//! `ObjectStream::from_bytes` makes an object's contents. Predicates come from the
//! re-exported `deploystack_core::mockall`, so they match the mocks' version.
//!
//! ```rust
//! # #[cfg(not(all(feature = "mock", feature = "testing")))] fn main() {}
//! # #[cfg(all(feature = "mock", feature = "testing"))]
//! #[deploystack_core::tokio::main(crate = "deploystack_core::tokio")]
//! async fn main() {
//!     use deploystack_core::bytes::Bytes;
//!     use deploystack_core::mockall::predicate::eq;
//!     use deploystack_core::model::DeploymentId;
//!     use deploystack_core::repository::{MockRepository, Repository};
//!     use deploystack_core::storage::{MockStorage, ObjectStream, Storage};
//!     use deploystack_core::testing::fixtures;
//!
//!     /// The code under test: the home page of a deployment, or `None`.
//!     async fn home_page(
//!         repository: &dyn Repository,
//!         storage: &dyn Storage,
//!         id: &DeploymentId,
//!     ) -> Option<Bytes> {
//!         let file = repository.find_file(id, "index.html").await.ok()??;
//!         let object = storage.get(&file.sha256.blob_key()).await.ok()?;
//!         object.into_bytes().await.ok()
//!     }
//!
//!     let page = b"<h1>hello</h1>";
//!     let file = fixtures::file_entry("index.html", page);
//!     let id = DeploymentId::random();
//!     let mut repository = MockRepository::new();
//!     let entry = file.clone();
//!     repository
//!         .expect_find_file()
//!         .withf(move |asked, path| *asked == id && path == "index.html")
//!         .returning(move |_, _| Ok(Some(entry.clone())));
//!     let mut storage = MockStorage::new();
//!     storage
//!         .expect_get()
//!         .with(eq(file.sha256.blob_key()))
//!         .returning(|_| Ok(ObjectStream::from_bytes(&b"<h1>hello</h1>"[..])));
//!
//!     let home = home_page(&repository, &storage, &id).await;
//!     assert_eq!(home.as_deref(), Some(&page[..]));
//! }
//! ```
//!
//! ## 3. A storage decorator, checked by the conformance suite
//! `Arc<S>` and `Box<S>` implement a port when `S` does, so a decorator generic over the
//! port wraps what [`Services`](crate::Services) holds (`Arc<dyn Storage>`) as it is. Run it
//! through `testing::storage::run_all` (feature `testing`), the suite every built-in adapter
//! passes; there is one per port (`testing::repository`, `queue`, `build`, `events`).
//!
//! ```rust
//! # #[cfg(not(feature = "testing"))] fn main() {}
//! # #[cfg(feature = "testing")]
//! #[deploystack_core::tokio::main(crate = "deploystack_core::tokio")]
//! async fn main() {
//!     use std::ops::Range;
//!     use std::path::Path;
//!     use std::sync::Arc;
//!     use std::sync::atomic::{AtomicU64, Ordering};
//!
//!     use deploystack_core::async_trait;
//!     use deploystack_core::bytes::Bytes;
//!     use deploystack_core::storage::{
//!         ObjectInfo, ObjectStoreStorage, ObjectStream, Storage, StorageError,
//!     };
//!
//!     /// Counts the objects read through it.
//!     struct Counting<S> {
//!         inner: S,
//!         reads: AtomicU64,
//!     }
//!
//!     #[async_trait]
//!     impl<S: Storage> Storage for Counting<S> {
//!         async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
//!             self.inner.put(key, data).await
//!         }
//!         async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
//!             self.inner.put_file(key, path).await
//!         }
//!         async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
//!             self.reads.fetch_add(1, Ordering::Relaxed);
//!             self.inner.get(key).await
//!         }
//!         async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
//!             self.reads.fetch_add(1, Ordering::Relaxed);
//!             self.inner.get_range(key, range).await
//!         }
//!         async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
//!             self.inner.head(key).await
//!         }
//!         async fn delete(&self, key: &str) -> Result<(), StorageError> {
//!             self.inner.delete(key).await
//!         }
//!         async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
//!             self.inner.list(prefix).await
//!         }
//!         async fn ping(&self) -> Result<(), StorageError> {
//!             self.inner.ping().await
//!         }
//!     }
//!
//!     // What `Services` holds: an `Arc<dyn Storage>`, wrapped as it is.
//!     let storage: Arc<dyn Storage> = Arc::new(ObjectStoreStorage::memory());
//!     let counting = Counting { inner: storage, reads: AtomicU64::new(0) };
//!     deploystack_core::testing::storage::run_all(&counting).await;
//!     assert!(counting.reads.load(Ordering::Relaxed) > 0);
//! }
//! ```
