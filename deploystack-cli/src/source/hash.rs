//! The sha256 of every file, computed on several threads at once (one per core, at most
//! [`MAX_THREADS`]), each thread taking the next file not yet taken, so a few large files do
//! not leave the other threads idle. Progress is counted in bytes.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use super::Source;
use crate::exit::CliError;

/// Most threads hashing at once.
pub const MAX_THREADS: usize = 8;
/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// The lowercase hex sha256 of each of `source`'s files, in the order of `source.files`.
pub fn hash_all(source: &Source, progress: &ProgressBar) -> Result<Vec<String>, CliError> {
    let count = source.files.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(count.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let digests: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; count]);
    let first_error: Mutex<Option<CliError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut opener = source.opener();
                let mut buffer = vec![0u8; CHUNK];
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = source.files.get(index) else {
                        break;
                    };
                    let result = opener.open(file).and_then(|mut reader| {
                        let mut hasher = Sha256::new();
                        loop {
                            let read = reader.read(&mut buffer)?;
                            if read == 0 {
                                break;
                            }
                            hasher.update(&buffer[..read]);
                            progress.inc(read as u64);
                        }
                        Ok(hex::encode(hasher.finalize()))
                    });
                    match result {
                        Ok(digest) => {
                            if let Ok(mut digests) = digests.lock() {
                                digests[index] = Some(digest);
                            }
                        }
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut first) = first_error.lock() {
                                first.get_or_insert_with(|| {
                                    CliError::local(format!("reading {}", file.path), err)
                                });
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().ok().flatten() {
        return Err(err);
    }
    let digests = digests.into_inner().unwrap_or_default();
    digests
        .into_iter()
        .zip(&source.files)
        .map(|(digest, file)| {
            digest.ok_or_else(|| CliError::local(format!("hashing {}", file.path), "not hashed"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn every_file_gets_its_sha256_in_order_and_progress_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            fs::write(dir.path().join(format!("f{i:02}.txt")), format!("file {i}")).unwrap();
        }
        fs::write(dir.path().join("empty"), "").unwrap();
        let source = super::super::folder::read(dir.path()).unwrap();
        let bar = ProgressBar::hidden();
        let digests = hash_all(&source, &bar).unwrap();
        assert_eq!(digests.len(), 41);
        // sha256("") and sha256("file 0"), computed independently.
        assert_eq!(
            digests[0],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digests[1], hex::encode(Sha256::digest(b"file 0")));
        assert_eq!(digests[40], hex::encode(Sha256::digest(b"file 39")));
        assert_eq!(bar.position(), source.total_bytes());
    }

    #[test]
    fn a_file_that_vanished_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "a").unwrap();
        let source = super::super::folder::read(dir.path()).unwrap();
        fs::remove_file(dir.path().join("a.txt")).unwrap();
        let err = hash_all(&source, &ProgressBar::hidden()).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::LOCAL);
        assert!(err.message().contains("a.txt"), "{err}");
    }
}
