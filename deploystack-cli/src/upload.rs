//! Sending what the server lacks: ask which digests are missing
//! (`POST /api/v1/files/missing`), then send each missing blob once, [`PARALLEL`] requests
//! at a time. Small files go in batches (`POST /api/v1/files`, one multipart part per file,
//! up to [`BATCH_FILES`] files or [`BATCH_BYTES`] bytes a request): a site of a thousand small
//! files is a handful of requests, not a thousand. Larger files are streamed one each from
//! disk (or from the zip archive) with `PUT /api/v1/files/{sha256}` and their
//! `Content-Length`. Identical files share a digest and are sent once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::api::Client;
use crate::exit::{CliError, Kind};
use crate::source::{Opener, Source};

/// Blobs sent at once.
pub const PARALLEL: usize = 8;
/// Digests asked about per request.
const MISSING_BATCH: usize = 5000;
/// Files up to this size are sent in batches; larger ones alone.
pub const BATCH_FILE_MAX: u64 = 1024 * 1024;
/// Most files in one batch.
pub const BATCH_FILES: usize = 250;
/// Most bytes in one batch (the server takes up to 64 MiB).
pub const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// One request's worth of files to send, as indexes into `source.files`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    /// Small files, sent together.
    Batch(Vec<usize>),
    /// One larger file, streamed.
    Single(usize),
}

/// `indexes` grouped into requests: small files in batches, in order, larger ones alone.
fn plan(source: &Source, indexes: &[usize]) -> Vec<Work> {
    let mut work = Vec::new();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for &index in indexes {
        let size = source.files[index].size;
        if size > BATCH_FILE_MAX {
            work.push(Work::Single(index));
            continue;
        }
        if batch.len() == BATCH_FILES || batch_bytes + size > BATCH_BYTES {
            work.push(Work::Batch(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch.push(index);
        batch_bytes += size;
    }
    if !batch.is_empty() {
        work.push(Work::Batch(batch));
    }
    work
}

/// The digests of `digests` the server lacks, each once.
pub fn missing(client: &Client, digests: &[String]) -> Result<Vec<String>, CliError> {
    let unique: Vec<&String> = {
        let mut seen = BTreeSet::new();
        digests.iter().filter(|d| seen.insert(d.as_str())).collect()
    };
    let mut missing = Vec::new();
    for batch in unique.chunks(MISSING_BATCH) {
        let answer = client.post("/api/v1/files/missing", &json!({ "digests": batch }))?;
        let listed = answer["missing"].as_array().ok_or_else(|| {
            CliError::new(
                Kind::Api,
                "the server's answer to /api/v1/files/missing has no `missing` list",
            )
            .with_hint("is the server as new as this command?")
        })?;
        missing.extend(listed.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    Ok(missing)
}

/// The files whose bytes are to be sent for `wanted` digests: one per digest (the first
/// file with it), as indexes into `source.files`.
pub fn files_for(source: &Source, digests: &[String], wanted: &[String]) -> Vec<usize> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (index, digest) in digests.iter().enumerate() {
        first.entry(digest.as_str()).or_insert(index);
    }
    let mut seen = BTreeSet::new();
    wanted
        .iter()
        .filter(|d| seen.insert(d.as_str()))
        .filter_map(|d| first.get(d.as_str()).copied())
        .filter(|&index| index < source.files.len())
        .collect()
}

/// Send the files at `indexes` of `source` (with their `digests`); progress in bytes.
pub fn send(
    client: &Client,
    source: &Source,
    digests: &[String],
    indexes: &[usize],
    progress: &ProgressBar,
) -> Result<(), CliError> {
    let work = plan(source, indexes);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<CliError>> = Mutex::new(None);
    let threads = PARALLEL.min(work.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut opener = source.opener();
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let result = match item {
                        Work::Single(index) => {
                            send_one(client, source, &mut opener, digests, *index, progress)
                        }
                        Work::Batch(batch) => {
                            send_batch(client, source, &mut opener, digests, batch, progress)
                        }
                    };
                    if let Err(err) = result {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(err);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().ok().flatten() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Stream one file with `PUT /api/v1/files/{sha256}`.
fn send_one(
    client: &Client,
    source: &Source,
    opener: &mut Opener<'_>,
    digests: &[String],
    index: usize,
    progress: &ProgressBar,
) -> Result<(), CliError> {
    let file = &source.files[index];
    let digest = &digests[index];
    let reader = opener
        .open(file)
        .map_err(|err| CliError::local(format!("reading {}", file.path), err))?;
    let mut reader = progress.wrap_read(reader);
    client
        .put_raw(&format!("/api/v1/files/{digest}"), file.size, &mut reader)
        .map(drop)
        .map_err(|err| naming(&file.path, err))
}

/// Send small files together with `POST /api/v1/files`, one multipart part each, named by
/// its digest.
fn send_batch(
    client: &Client,
    source: &Source,
    opener: &mut Opener<'_>,
    digests: &[String],
    batch: &[usize],
    progress: &ProgressBar,
) -> Result<(), CliError> {
    // A boundary no file of the batch contains: derived from their digests.
    let boundary = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for &index in batch {
            hasher.update(digests[index].as_bytes());
        }
        format!("deploystack-{}", hex_prefix(&hasher.finalize()))
    };
    let mut body = Vec::new();
    let mut bytes = 0;
    for &index in batch {
        let file = &source.files[index];
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{}\"\r\ncontent-type: application/octet-stream\r\n\r\n",
                digests[index]
            )
            .as_bytes(),
        );
        let mut reader = opener
            .open(file)
            .map_err(|err| CliError::local(format!("reading {}", file.path), err))?;
        std::io::copy(&mut reader, &mut body)
            .map_err(|err| CliError::local(format!("reading {}", file.path), err))?;
        body.extend_from_slice(b"\r\n");
        bytes += file.size;
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let first = &source.files[batch[0]].path;
    client
        .post_bytes("/api/v1/files", &content_type, &body)
        .map_err(|err| naming(&format!("{first} and {} more", batch.len() - 1), err))?;
    progress.inc(bytes);
    Ok(())
}

/// The first 16 bytes of a digest, in hex.
fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `err`, saying it happened while uploading `what`.
fn naming(what: &str, err: CliError) -> CliError {
    let message = format!("uploading {what}: {}", err.message());
    let mut wrapped = CliError::new(err.kind(), message);
    if let Some(hint) = err.hint() {
        wrapped = wrapped.with_hint(hint);
    }
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{MODE_FILE, Origin, SourceFile};

    fn file(path: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            size: 1,
            mode: MODE_FILE,
            origin: Origin::Disk(path.into()),
        }
    }

    #[test]
    fn small_files_go_in_batches_and_large_ones_alone() {
        let sized = |path: &str, size: u64| SourceFile { size, ..file(path) };
        let mut files: Vec<SourceFile> = (0..BATCH_FILES + 3)
            .map(|i| file(&format!("f{i}")))
            .collect();
        files.push(sized("big", BATCH_FILE_MAX + 1));
        let source = Source {
            files,
            ..Source::default()
        };
        let indexes: Vec<usize> = (0..source.files.len()).collect();
        let work = plan(&source, &indexes);
        assert_eq!(work.len(), 3, "{work:?}");
        assert!(matches!(&work[0], Work::Batch(b) if b.len() == BATCH_FILES));
        assert_eq!(work[1], Work::Single(BATCH_FILES + 3));
        assert!(matches!(&work[2], Work::Batch(b) if b.len() == 3));
        // A batch stops short of the byte limit too.
        let halves = Source {
            files: vec![sized("a", BATCH_FILE_MAX); 9],
            ..Source::default()
        };
        let work = plan(&halves, &(0..9).collect::<Vec<_>>());
        assert_eq!(work.len(), 2, "{work:?}");
    }

    #[test]
    fn each_wanted_digest_is_sent_once_from_its_first_file() {
        let source = Source {
            files: vec![file("a"), file("b"), file("c")],
            ..Source::default()
        };
        let digests: Vec<String> = ["x", "y", "x"].map(String::from).to_vec();
        let wanted: Vec<String> = ["x", "x", "unknown"].map(String::from).to_vec();
        assert_eq!(files_for(&source, &digests, &wanted), vec![0]);
        let wanted: Vec<String> = ["y", "x"].map(String::from).to_vec();
        assert_eq!(files_for(&source, &digests, &wanted), vec![1, 0]);
    }
}
