//! Walking the build output: confined to the build's folders, regular files and folders
//! only, within the limits, every file hashed and typed; the routing files are read and taken
//! out of the manifest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Pipeline;
use super::build::Ran;
use super::failure::{Failure, user};
use crate::build::BuildLog;
use crate::model::FileEntry;
use crate::routing::{self, RoutingConfig};

/// A file of the build output, ready to be stored and published.
#[derive(Debug)]
pub(super) struct OutputFile {
    pub(super) entry: FileEntry,
    pub(super) local: PathBuf,
}

impl Pipeline {
    /// Check and hash the output of `ran`, and compile its routing files.
    pub(super) async fn check_output(
        &self,
        ran: &Ran,
        log: &BuildLog,
    ) -> Result<(Vec<OutputFile>, Option<RoutingConfig>), Failure> {
        let services = &self.services;
        let output_dir = confine_output(&ran.output_dir, &[&ran.source_dir, &ran.work_dir])?;
        let phase = Instant::now();
        let limits = OutputLimits {
            max_files: services.config.build_output_max_files,
            max_bytes: services.config.build_output_max_bytes,
        };
        let (files, routing) = tokio::task::spawn_blocking(move || {
            let files = collect_output(&output_dir, &limits)?;
            read_routing(files)
        })
        .await
        .map_err(|err| Failure::Internal(err.to_string()))??;
        for line in &routing.notes {
            log.system(line.clone());
        }
        let routing = routing.config;
        if files.is_empty() {
            return Err(user(
                "empty_output",
                "the build produced no files to publish",
            ));
        }
        let total: u64 = files.iter().map(|f| f.entry.size).sum();
        log.system(format!(
            "checked and hashed {} files ({total} bytes) in {} ms",
            files.len(),
            phase.elapsed().as_millis()
        ));
        Ok((files, routing))
    }
}

/// The output folder, resolved, if it lies inside one of `allowed` (the source and work
/// folders). Resolving first matters: `read_dir` follows a link, so an output folder that is
/// itself a link (or sits under one) would otherwise publish whatever it points at.
fn confine_output(dir: &Path, allowed: &[&Path]) -> Result<PathBuf, Failure> {
    let resolved = std::fs::canonicalize(dir).map_err(|_| {
        user(
            "output_missing",
            "the build did not produce its output folder",
        )
    })?;
    let inside = allowed
        .iter()
        .any(|root| std::fs::canonicalize(root).is_ok_and(|root| resolved.starts_with(root)));
    if !inside {
        return Err(user(
            "unsafe_output",
            "the build output folder is a symbolic link to outside the build; only folders inside the build are published",
        ));
    }
    if !resolved.is_dir() {
        return Err(user("output_missing", "the build output is not a folder"));
    }
    Ok(resolved)
}

/// How much a build may publish (`build_output_max_files`, `build_output_max_bytes`).
#[derive(Debug, Clone, Copy)]
struct OutputLimits {
    max_files: usize,
    max_bytes: u64,
}

/// Walk the build output: every entry must be a regular file or a folder. Symbolic links,
/// hard links, devices, sockets and pipes are refused: output is hostile data, and a link
/// would let it publish files from outside its folder. Past the limits the walk stops with
/// `output_too_large` before hashing more.
fn collect_output(root: &Path, limits: &OutputLimits) -> Result<Vec<OutputFile>, Failure> {
    use std::os::unix::fs::MetadataExt;

    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let local = entry.path();
            let relative = local
                .strip_prefix(root)
                .map_err(|err| Failure::Internal(err.to_string()))?;
            let Some(path) = relative.to_str().map(str::to_owned) else {
                return Err(user(
                    "invalid_output",
                    format!("the build output has a file name that is not UTF-8: {relative:?}"),
                ));
            };
            let meta = std::fs::symlink_metadata(&local)?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(user(
                    "unsafe_output",
                    format!(
                        "the build output contains a symbolic link: {path:?}; only regular files and folders are published"
                    ),
                ));
            } else if kind.is_dir() {
                folders.push(local);
            } else if kind.is_file() {
                if meta.nlink() > 1 {
                    return Err(user(
                        "unsafe_output",
                        format!(
                            "the build output contains a hard link: {path:?}; only regular files and folders are published"
                        ),
                    ));
                }
                total = total.saturating_add(meta.len());
                if files.len() >= limits.max_files || total > limits.max_bytes {
                    return Err(user(
                        "output_too_large",
                        format!(
                            "the build output is larger than allowed (at most {} files and {} bytes)",
                            limits.max_files, limits.max_bytes
                        ),
                    ));
                }
                let sha256 = crate::services::blobs::hash_file(&local)?;
                files.push(OutputFile {
                    entry: FileEntry {
                        content_type: content_type_for(&path),
                        path,
                        sha256,
                        size: meta.len(),
                        encodings: Vec::new(),
                    },
                    local,
                });
            } else {
                return Err(user(
                    "unsafe_output",
                    format!(
                        "the build output contains a special file (device, socket or pipe): {path:?}"
                    ),
                ));
            }
        }
    }
    files.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(files)
}

/// The routing configuration of a build output and what the build log should say about it.
pub(super) struct RoutingFiles {
    pub(super) config: Option<RoutingConfig>,
    pub(super) notes: Vec<String>,
}

/// Compile the routing files at the root of the output (see [`routing::CONFIG_FILES`]) and take
/// them out of the manifest: like Vercel and Netlify, we never serve them. An invalid file is
/// the user's error, so the deployment ends in `ERROR` before anything is stored or published.
pub(super) fn read_routing(
    files: Vec<OutputFile>,
) -> Result<(Vec<OutputFile>, RoutingFiles), Failure> {
    let (config_files, files): (Vec<OutputFile>, Vec<OutputFile>) = files
        .into_iter()
        .partition(|f| routing::CONFIG_FILES.contains(&f.entry.path.as_str()));
    let mut read_error = None;
    let mut notes = Vec::new();
    let config = RoutingConfig::from_files(
        |name| {
            let file = config_files.iter().find(|f| f.entry.path == name)?;
            // One byte past the limit is enough for the parser to refuse the file, so an
            // oversized one is never read into memory whole.
            let limit = routing::MAX_CONFIG_BYTES as u64 + 1;
            let mut bytes = Vec::new();
            let read = std::fs::File::open(&file.local).and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, limit), &mut bytes)
            });
            match read {
                Ok(_) => Some(bytes),
                Err(err) => {
                    read_error = Some(err);
                    None
                }
            }
        },
        |note| notes.push(note),
    );
    if let Some(err) = read_error {
        return Err(err.into());
    }
    let config = config.map_err(|err| user(err.code(), err.to_string()))?;
    Ok((files, RoutingFiles { config, notes }))
}

/// The `Content-Type` a file is served with, from its extension; text gets `charset=utf-8`
/// and anything unknown is `application/octet-stream` (never sniffed).
pub fn content_type_for(path: &str) -> String {
    let Some(mime) = mime_guess::from_path(path).first() else {
        return "application/octet-stream".to_owned();
    };
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
        );
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContentHash;

    #[test]
    fn content_types_are_exact_and_text_is_utf8() {
        assert_eq!(content_type_for("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("a/site.css"), "text/css; charset=utf-8");
        assert_eq!(content_type_for("logo.png"), "image/png");
        assert_eq!(
            content_type_for("data.bin.unknownext"),
            "application/octet-stream"
        );
        assert_eq!(content_type_for("noext"), "application/octet-stream");
        assert!(content_type_for("app.js").ends_with("javascript; charset=utf-8"));
    }

    const LIMITS: OutputLimits = OutputLimits {
        max_files: 100,
        max_bytes: 1 << 20,
    };

    #[test]
    fn output_past_the_file_or_byte_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("{i}.txt")), "12345").unwrap();
        }
        assert_eq!(collect_output(dir.path(), &LIMITS).unwrap().len(), 3);
        for limits in [
            OutputLimits {
                max_files: 2,
                ..LIMITS
            },
            OutputLimits {
                max_bytes: 14,
                ..LIMITS
            },
        ] {
            match collect_output(dir.path(), &limits) {
                Err(Failure::User { code, .. }) => assert_eq!(code, "output_too_large"),
                other => panic!("expected output_too_large, got {other:?}"),
            }
        }
    }

    #[test]
    fn output_with_links_or_special_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/ok.txt"), "fine").unwrap();
        let files = collect_output(dir.path(), &LIMITS).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].entry.path, "sub/ok.txt");
        assert_eq!(files[0].entry.sha256, ContentHash::of(b"fine"));

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("leak")).unwrap();
        match collect_output(dir.path(), &LIMITS) {
            Err(Failure::User { code, message }) => {
                assert_eq!(code, "unsafe_output");
                assert!(message.contains("symbolic link"), "{message}");
            }
            other => panic!("expected unsafe_output, got {other:?}"),
        }
        std::fs::remove_file(dir.path().join("leak")).unwrap();

        std::fs::hard_link(dir.path().join("sub/ok.txt"), dir.path().join("twin")).unwrap();
        assert!(matches!(
            collect_output(dir.path(), &LIMITS),
            Err(Failure::User { code, .. }) if code == "unsafe_output"
        ));
        std::fs::remove_file(dir.path().join("twin")).unwrap();

        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        match collect_output(dir.path(), &LIMITS) {
            Err(Failure::User { code, message }) => {
                assert_eq!(code, "unsafe_output");
                assert!(message.contains("special file"), "{message}");
            }
            other => panic!("expected unsafe_output, got {other:?}"),
        }
    }
}
