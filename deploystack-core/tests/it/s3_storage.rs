//! `S3Storage` against a real S3-compatible server: `S3_ENDPOINT` and `S3_BUCKET` (the test
//! command, `scripts/test`, starts moto and sets them). Each test works under its own prefix
//! of the shared bucket, so the tests run in parallel and beside other runs. Without
//! `S3_ENDPOINT` the tests that need a server skip, and fail under `CI=true`; the ones about
//! bad URLs and unreachable endpoints need no server and always run.

use std::net::TcpListener;

use bytes::Bytes;
use deploystack_core::config::S3Settings;
use deploystack_core::storage::{S3Storage, Storage, StorageError, download_to_file};
use deploystack_core::testing::env::{self, S3Env};
use deploystack_core::testing::storage::run_all;
use deploystack_core::{Config, Services};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Where `ObjectStoreStorage` switches from one put to a multipart upload, and the size of
/// each part.
const PART: usize = 8 * 1024 * 1024;

fn settings(s3: &S3Env) -> S3Settings {
    S3Settings {
        endpoint: Some(s3.endpoint.clone()),
        region: Some(s3.region.clone()),
        access_key_id: Some(s3.access_key_id.clone()),
        secret_access_key: Some(s3.secret_access_key.clone()),
        allow_http: Some(s3.endpoint.starts_with("http://")),
    }
}

/// Storage under `prefix` of the test bucket.
async fn storage_under(s3: &S3Env, prefix: &str) -> S3Storage {
    let url = format!("s3://{}/{prefix}", s3.bucket);
    S3Storage::from_url(&url, &settings(s3))
        .await
        .unwrap_or_else(|err| panic!("connect to {url}: {err}"))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

async fn read(storage: &dyn Storage, key: &str) -> Bytes {
    let mut object = storage.get(key).await.unwrap();
    let mut data = Vec::new();
    while let Some(chunk) = object.stream.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    Bytes::from(data)
}

async fn keys(storage: &dyn Storage, prefix: &str) -> Vec<String> {
    let listed = storage.list(prefix).await.unwrap();
    listed.into_iter().map(|object| object.key).collect()
}

async fn remove_all(storage: &dyn Storage) {
    for key in keys(storage, "").await {
        storage.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn s3_storage_passes_the_storage_suite() {
    let Some(s3) = env::s3() else { return };
    let storage = storage_under(&s3, &env::unique_name("conformance")).await;
    run_all(&storage).await;
}

#[tokio::test]
async fn a_file_past_the_multipart_threshold_round_trips_and_reads_by_range() {
    let Some(s3) = env::s3() else { return };
    let prefix = env::unique_name("multipart");
    let storage = storage_under(&s3, &prefix).await;
    // Two whole parts and a short third one.
    let size = 2 * PART + 12_345;
    let data = random_bytes(size);
    let local = tempfile::tempdir().unwrap();
    let path = local.path().join("site.zip");
    std::fs::write(&path, &data).unwrap();

    let stored = storage.put_file("sources/site.zip", &path).await.unwrap();
    assert_eq!(stored, size as u64);
    let head = storage.head("sources/site.zip").await.unwrap();
    assert_eq!(head.map(|info| info.size), Some(size as u64));

    // S3 gives a multipart object an ETag ending in `-<parts>`: proof the streaming path ran.
    let raw = AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_region(&s3.region)
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key_id)
        .with_secret_access_key(&s3.secret_access_key)
        .with_allow_http(true)
        .build()
        .unwrap();
    let meta = raw
        .head(&format!("{prefix}/sources/site.zip").into())
        .await
        .unwrap();
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");

    let copy = local.path().join("copy.zip");
    let downloaded = download_to_file(&storage, "sources/site.zip", &copy)
        .await
        .unwrap();
    assert_eq!(downloaded, size as u64);
    assert!(
        Sha256::digest(std::fs::read(&copy).unwrap()) == Sha256::digest(&data),
        "the downloaded file differs from the one uploaded"
    );

    for range in [
        0..1,
        PART - 3..PART + 3,
        2 * PART - 1..2 * PART + 1,
        1_000_000..1_000_000 + PART,
        size - 100..size,
    ] {
        let slice = storage
            .get_range("sources/site.zip", range.start as u64..range.end as u64)
            .await
            .unwrap();
        assert!(
            slice[..] == data[range.clone()],
            "get_range {range:?} returned other bytes"
        );
    }
    remove_all(&storage).await;
}

#[tokio::test]
async fn storages_under_different_prefixes_do_not_see_each_other() {
    let Some(s3) = env::s3() else { return };
    let (prefix_a, prefix_b) = (env::unique_name("tenant"), env::unique_name("tenant"));
    let a = storage_under(&s3, &prefix_a).await;
    let b = storage_under(&s3, &prefix_b).await;

    a.put("sources/x.zip", Bytes::from_static(b"from a"))
        .await
        .unwrap();
    b.put("sources/x.zip", Bytes::from_static(b"from b"))
        .await
        .unwrap();
    a.put("blobs/ab/abc", Bytes::from_static(b"only in a"))
        .await
        .unwrap();

    assert_eq!(read(&a, "sources/x.zip").await, "from a");
    assert_eq!(read(&b, "sources/x.zip").await, "from b");
    assert_eq!(b.head("blobs/ab/abc").await.unwrap(), None);
    assert_eq!(keys(&a, "").await, ["blobs/ab/abc", "sources/x.zip"]);
    assert_eq!(keys(&b, "").await, ["sources/x.zip"]);
    a.delete("sources/x.zip").await.unwrap();
    assert_eq!(read(&b, "sources/x.zip").await, "from b");

    // From the bucket's root, each prefix is a folder holding its storage's keys.
    let root = S3Storage::from_url(&format!("s3://{}", s3.bucket), &settings(&s3))
        .await
        .unwrap();
    assert_eq!(
        keys(&root, &prefix_a).await,
        [format!("{prefix_a}/blobs/ab/abc")]
    );
    remove_all(&a).await;
    remove_all(&b).await;
}

#[tokio::test]
async fn services_open_s3_storage_from_the_configuration() {
    let Some(s3) = env::s3() else { return };
    let url = format!("s3://{}/{}", s3.bucket, env::unique_name("services"));
    let config = Config {
        database_url: Some("sqlite::memory:".into()),
        storage_url: Some(url.clone()),
        s3: settings(&s3),
        ..Config::default()
    };
    let services = Services::from_config(config).await.unwrap();
    services
        .storage
        .put("sources/a.zip", Bytes::from_static(b"zip"))
        .await
        .unwrap();

    let direct = S3Storage::from_url(&url, &settings(&s3)).await.unwrap();
    assert_eq!(read(&direct, "sources/a.zip").await, "zip");
    remove_all(&direct).await;
}

#[tokio::test]
async fn a_missing_bucket_fails_at_connect() {
    let Some(s3) = env::s3() else { return };
    let bucket = env::unique_name("missing").replace('_', "-");
    let err = S3Storage::from_url(&format!("s3://{bucket}/x"), &settings(&s3))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::InvalidConfig(message)
            if message.contains(&bucket) && message.contains("does not exist")),
        "{err:?}"
    );
}

#[tokio::test]
async fn debug_output_never_shows_the_secret() {
    let Some(s3) = env::s3() else { return };
    // The test server takes any secret; this one cannot appear in a printout by chance.
    let secret = env::unique_name("secret");
    let settings = S3Settings {
        secret_access_key: Some(secret.clone()),
        ..settings(&s3)
    };
    let url = format!("s3://{}/{}", s3.bucket, env::unique_name("debug"));
    let storage = S3Storage::from_url(&url, &settings).await.unwrap();
    let printed = format!("{storage:?}");
    assert!(printed.contains(&url), "{printed}");
    assert!(!printed.contains(&secret), "{printed}");
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_at_connect_without_the_secret() {
    // A port that was free a moment ago: connections to it are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let secret = "do-not-print-this-secret";
    let settings = S3Settings {
        endpoint: Some(endpoint.clone()),
        access_key_id: Some("test".into()),
        secret_access_key: Some(secret.into()),
        allow_http: Some(true),
        ..S3Settings::default()
    };
    let err = S3Storage::from_url("s3://deploystack-test/x", &settings)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(!message.contains(secret), "{message}");

    let config = Config {
        database_url: Some("sqlite::memory:".into()),
        storage_url: Some("s3://deploystack-test/x".into()),
        s3: settings,
        ..Config::default()
    };
    let err = Services::from_config(config).await.unwrap_err().to_string();
    assert!(err.contains("cannot open storage"), "{err}");
}

#[tokio::test]
async fn malformed_urls_are_configuration_errors_naming_the_setting() {
    for (url, reason) in [
        ("s3://", "names no bucket"),
        ("s3:///sites", "names no bucket"),
        ("s3://Sites_2024/prod", "lowercase letters"),
        ("s3://ab", "3 to 63"),
        ("s3://sites//prod", "prefix"),
    ] {
        let err = S3Storage::from_url(url, &S3Settings::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidConfig(message) if message.contains(reason)),
            "{url}: {err:?}"
        );

        let config = Config {
            database_url: Some("sqlite::memory:".into()),
            storage_url: Some(url.into()),
            ..Config::default()
        };
        let err = Services::from_config(config).await.unwrap_err().to_string();
        assert!(err.contains("DEPLOYSTACK_STORAGE_URL"), "{url}: {err}");
        assert!(err.contains(reason), "{url}: {err}");
    }
}
