//! Storage conformance suite: what every [`Storage`] adapter must do.
//!
//! Every check writes under its own random prefix (`conformance-<uuid>/`) and removes what it
//! wrote when it passes, so the suite can run against a bucket or directory that holds other
//! data, and several runs can share it. One check uploads a 20 MiB file to exercise the
//! streaming (multipart) path of `put_file`.

use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::storage::{ObjectInfo, Storage, StorageError, download_to_file};

/// Big enough that adapters stream it rather than read it whole (multipart on object stores).
const LARGE_FILE: usize = 20 * 1024 * 1024;

/// Runs every check against `storage`.
pub async fn run_all(storage: &dyn Storage) {
    macro_rules! run {
        ($($check:ident),* $(,)?) => {$(
            eprintln!("storage conformance: {}", stringify!($check));
            $check(storage).await;
        )*};
    }
    run!(
        put_then_get_round_trips,
        put_file_stores_a_small_file,
        put_file_streams_a_large_file,
        get_of_a_missing_key_is_not_found,
        head_reports_the_size_or_none,
        get_range_reads_a_slice,
        get_range_outside_the_object_is_invalid,
        delete_removes_the_object,
        delete_of_a_missing_key_succeeds,
        list_returns_the_folder_in_key_order,
        invalid_keys_are_refused,
        put_replaces_an_existing_object,
        download_to_file_round_trips,
        ping_succeeds,
    );
}

/// What `put` stores, `get` streams back, with its size.
pub async fn put_then_get_round_trips(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/hello.txt");
    let data = Bytes::from_static(b"hello, conformance");
    put(storage, &key, data.clone()).await;

    assert_eq!(read(storage, &key).await, data);
    remove_all(storage, &dir).await;
}

/// `put_file` of a small file stores its bytes and returns its size.
pub async fn put_file_stores_a_small_file(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/small.bin");
    let data = random_bytes(10_000);
    let local = tempfile::tempdir().expect("temporary directory");
    let path = local.path().join("small.bin");
    std::fs::write(&path, &data).expect("write the local file");

    let size = storage.put_file(&key, &path).await.expect("put_file");
    assert_eq!(size, data.len() as u64);
    assert_eq!(read(storage, &key).await, data);
    remove_all(storage, &dir).await;
}

/// `put_file` of a 20 MiB file stores every byte in order.
pub async fn put_file_streams_a_large_file(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/large.bin");
    let data = random_bytes(LARGE_FILE);
    let local = tempfile::tempdir().expect("temporary directory");
    let path = local.path().join("large.bin");
    std::fs::write(&path, &data).expect("write the local file");

    let size = storage.put_file(&key, &path).await.expect("put_file");
    assert_eq!(size, LARGE_FILE as u64);
    assert_eq!(head(storage, &key).await.map(|info| info.size), Some(size));

    // Compare digests rather than 20 MiB of bytes, so a failure prints something readable.
    let mut object = storage.get(&key).await.expect("get");
    assert_eq!(object.size, size);
    let mut digest = Sha256::new();
    let mut streamed = 0u64;
    while let Some(chunk) = object.stream.next().await {
        let chunk = chunk.expect("read a chunk");
        streamed += chunk.len() as u64;
        digest.update(&chunk);
    }
    assert_eq!(streamed, size);
    assert_eq!(
        hex::encode(digest.finalize()),
        hex::encode(Sha256::digest(&data)),
        "the stored large file differs from the one uploaded"
    );
    remove_all(storage, &dir).await;
}

/// Reading a key nobody wrote fails with `NotFound`, whole or by range.
pub async fn get_of_a_missing_key_is_not_found(storage: &dyn Storage) {
    let key = format!("{}/missing", fresh_prefix());
    let whole = storage.get(&key).await.map(|object| object.size);
    assert!(
        matches!(&whole, Err(StorageError::NotFound(_))),
        "get of a missing key: expected NotFound, got {whole:?}"
    );
    let slice = storage.get_range(&key, 0..1).await;
    assert!(
        matches!(&slice, Err(StorageError::NotFound(_))),
        "get_range of a missing key: expected NotFound, got {slice:?}"
    );
}

/// `head` gives the key and size of an object, and `None` for a missing one.
pub async fn head_reports_the_size_or_none(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/sized");
    put(storage, &key, Bytes::from(vec![7u8; 1234])).await;

    assert_eq!(
        head(storage, &key).await,
        Some(ObjectInfo {
            key: key.clone(),
            size: 1234
        })
    );
    assert_eq!(head(storage, &format!("{dir}/missing")).await, None);
    remove_all(storage, &dir).await;
}

/// `get_range` returns exactly the requested slice; an empty range gives no bytes.
pub async fn get_range_reads_a_slice(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/ranged");
    let data = random_bytes(1000);
    put(storage, &key, data.clone()).await;

    for range in [0..10, 100..356, 990..1000, 0..1000] {
        let slice = storage
            .get_range(&key, range.clone())
            .await
            .unwrap_or_else(|err| panic!("get_range {range:?}: {err}"));
        assert_eq!(
            slice,
            data.slice(range.start as usize..range.end as usize),
            "get_range {range:?}"
        );
    }
    for range in [5..5, 1000..1000] {
        let slice = storage
            .get_range(&key, range.clone())
            .await
            .unwrap_or_else(|err| panic!("empty get_range {range:?}: {err}"));
        assert!(slice.is_empty(), "empty get_range {range:?} gave bytes");
    }
    remove_all(storage, &dir).await;
}

/// A range that ends past the object, or ends before it starts, is `InvalidRange`.
pub async fn get_range_outside_the_object_is_invalid(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/ranged");
    put(storage, &key, random_bytes(1000)).await;

    let backwards = Range { start: 10, end: 5 };
    for range in [990..1001, 2000..3000, 2000..2000, backwards] {
        let result = storage.get_range(&key, range.clone()).await;
        assert!(
            matches!(
                &result,
                Err(StorageError::InvalidRange { key: k, start, end })
                    if *k == key && *start == range.start && *end == range.end
            ),
            "get_range {range:?} of a 1000-byte object: expected InvalidRange, got {result:?}"
        );
    }
    remove_all(storage, &dir).await;
}

/// After `delete` the object is gone, and deleting it again still succeeds.
pub async fn delete_removes_the_object(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/doomed");
    put(storage, &key, Bytes::from_static(b"bye")).await;

    storage.delete(&key).await.expect("delete");
    assert_eq!(head(storage, &key).await, None);
    let read = storage.get(&key).await.map(|object| object.size);
    assert!(
        matches!(read, Err(StorageError::NotFound(_))),
        "get after delete: expected NotFound, got {read:?}"
    );
    storage
        .delete(&key)
        .await
        .expect("a second delete succeeds");
}

/// Deleting a key nobody wrote succeeds, so cleanup can be retried.
pub async fn delete_of_a_missing_key_succeeds(storage: &dyn Storage) {
    let dir = fresh_prefix();
    storage
        .delete(&format!("{dir}/never-written"))
        .await
        .expect("delete of a missing key");
    storage
        .delete(&format!("{dir}/no/such/folder"))
        .await
        .expect("delete of a key in a missing folder");
}

/// `list` returns every object under a folder, nested ones included, in key order — and
/// nothing from a sibling whose name merely starts the same.
pub async fn list_returns_the_folder_in_key_order(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let inside = [
        format!("{dir}/site/b.txt"),
        format!("{dir}/site/sub/c.txt"),
        format!("{dir}/site/a.txt"),
    ];
    let outside = [format!("{dir}/sitemap/d.txt"), format!("{dir}/other/e.txt")];
    for (n, key) in inside.iter().chain(&outside).enumerate() {
        put(storage, key, Bytes::from(vec![b'x'; n + 1])).await;
    }

    let mut expected: Vec<ObjectInfo> = inside
        .iter()
        .enumerate()
        .map(|(n, key)| ObjectInfo {
            key: key.clone(),
            size: n as u64 + 1,
        })
        .collect();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    for prefix in [format!("{dir}/site"), format!("{dir}/site/")] {
        let listed = storage.list(&prefix).await.expect("list");
        assert_eq!(listed, expected, "list {prefix:?}");
    }
    let empty = storage
        .list(&format!("{dir}/nothing-here"))
        .await
        .expect("list of a missing folder");
    assert_eq!(empty, Vec::new());
    assert_eq!(
        storage.list(&dir).await.expect("list").len(),
        inside.len() + outside.len()
    );
    remove_all(storage, &dir).await;
}

/// Keys that are not clean relative paths are refused by every operation, before anything
/// touches the backend.
pub async fn invalid_keys_are_refused(storage: &dyn Storage) {
    let local = tempfile::tempdir().expect("temporary directory");
    let path = local.path().join("file");
    std::fs::write(&path, b"data").expect("write the local file");

    for key in ["", "../x", "a/../b", "./a", "/abs", "a//b", "a/"] {
        let data = Bytes::from_static(b"data");
        let results: [(&str, Result<(), StorageError>); 7] = [
            ("put", storage.put(key, data).await),
            ("put_file", storage.put_file(key, &path).await.map(drop)),
            ("get", storage.get(key).await.map(drop)),
            ("get_range", storage.get_range(key, 0..1).await.map(drop)),
            ("head", storage.head(key).await.map(drop)),
            ("delete", storage.delete(key).await),
            ("list", storage.list(key).await.map(drop)),
        ];
        for (operation, result) in results {
            // An empty prefix lists everything, and a trailing `/` is how a folder is written.
            if operation == "list" && (key.is_empty() || key == "a/") {
                continue;
            }
            assert!(
                matches!(&result, Err(StorageError::InvalidKey(k)) if k == key),
                "{operation} {key:?}: expected InvalidKey, got {result:?}"
            );
        }
    }
}

/// Writing a key again replaces its content, through `put` or `put_file`.
pub async fn put_replaces_an_existing_object(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/replaced");
    put(
        storage,
        &key,
        Bytes::from_static(b"the first, longer version"),
    )
    .await;
    put(storage, &key, Bytes::from_static(b"second")).await;
    assert_eq!(read(storage, &key).await, Bytes::from_static(b"second"));
    assert_eq!(head(storage, &key).await.map(|info| info.size), Some(6));

    let local = tempfile::tempdir().expect("temporary directory");
    let path = local.path().join("third");
    std::fs::write(&path, b"third").expect("write the local file");
    storage.put_file(&key, &path).await.expect("put_file");
    assert_eq!(read(storage, &key).await, Bytes::from_static(b"third"));
    remove_all(storage, &dir).await;
}

/// [`download_to_file`] writes the object's bytes to a local file and returns its size; a
/// missing object is `NotFound` and leaves no file behind.
pub async fn download_to_file_round_trips(storage: &dyn Storage) {
    let dir = fresh_prefix();
    let key = format!("{dir}/download.bin");
    let data = random_bytes(3 * 1024 * 1024 + 17);
    put(storage, &key, data.clone()).await;
    let local = tempfile::tempdir().expect("temporary directory");

    let path = local.path().join("download.bin");
    let size = download_to_file(storage, &key, &path)
        .await
        .expect("download_to_file");
    assert_eq!(size, data.len() as u64);
    assert!(
        std::fs::read(&path).expect("read the download") == data,
        "the downloaded file differs from the object"
    );

    let missing = local.path().join("missing.bin");
    let result = download_to_file(storage, &format!("{dir}/missing"), &missing).await;
    assert!(
        matches!(&result, Err(StorageError::NotFound(_))),
        "download of a missing key: expected NotFound, got {result:?}"
    );
    assert!(!missing.exists(), "a failed download left a file behind");
    remove_all(storage, &dir).await;
}

/// `ping` succeeds on working storage.
pub async fn ping_succeeds(storage: &dyn Storage) {
    storage.ping().await.expect("ping");
}

/// A folder no other check or run uses.
fn fresh_prefix() -> String {
    format!("conformance-{}", uuid::Uuid::new_v4().simple())
}

fn random_bytes(len: usize) -> Bytes {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    Bytes::from(data)
}

async fn put(storage: &dyn Storage, key: &str, data: Bytes) {
    storage
        .put(key, data)
        .await
        .unwrap_or_else(|err| panic!("put {key:?}: {err}"));
}

async fn head(storage: &dyn Storage, key: &str) -> Option<ObjectInfo> {
    storage
        .head(key)
        .await
        .unwrap_or_else(|err| panic!("head {key:?}: {err}"))
}

/// The whole object under `key`, streamed, checking that the announced size is right.
async fn read(storage: &dyn Storage, key: &str) -> Bytes {
    let mut object = storage
        .get(key)
        .await
        .unwrap_or_else(|err| panic!("get {key:?}: {err}"));
    let mut data = Vec::new();
    while let Some(chunk) = object.stream.next().await {
        data.extend_from_slice(&chunk.expect("read a chunk"));
    }
    assert_eq!(
        object.size,
        data.len() as u64,
        "size announced by get {key:?}"
    );
    Bytes::from(data)
}

/// Deletes everything under `dir`.
async fn remove_all(storage: &dyn Storage, dir: &str) {
    for object in storage.list(dir).await.expect("list for cleanup") {
        storage
            .delete(&object.key)
            .await
            .expect("delete for cleanup");
    }
}
