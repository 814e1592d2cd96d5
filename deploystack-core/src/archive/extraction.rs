//! Safe extraction: only what inspection accepted, only regular files and directories, only
//! under the destination, never through a link, never over an existing file, and never more
//! bytes than the headers declared.

use std::collections::HashSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::error::{ArchiveError, display_name, entry_zip_error, read_error};
use super::inspection::{ArchiveLimits, ArchiveManifest, open_and_inspect};

/// Size of the buffer used to copy one entry to disk.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// `O_NOFOLLOW` on Linux for the architectures that use the generic value
/// (x86_64, aarch64, riscv64). There is no `libc` dependency, so it is spelled
/// out here. Elsewhere `create_new` (`O_CREAT | O_EXCL`) alone already refuses
/// to follow a symbolic link in the last path component.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
))]
const O_NOFOLLOW: i32 = 0o400_000;

/// Result of a successful [`extract`].
#[derive(Debug, Clone)]
pub struct Extracted {
    /// Number of regular files written.
    pub files: usize,
    /// Bytes actually written (not the declared sizes).
    pub bytes: u64,
    /// The manifest [`inspect`](super::inspect) produced; `root_folder`, when set, was
    /// stripped, so the site sits directly in the destination directory.
    pub manifest: ArchiveManifest,
}

/// Inspect, then extract into `dest`, which must be an existing, empty
/// directory. Never writes outside `dest`, never follows or creates symbolic
/// links, never overwrites a file. When the manifest has a `root_folder`, it
/// is stripped while extracting, so `site/index.html` lands at
/// `dest/index.html`.
///
/// Nothing is written when inspection fails. When extraction itself fails
/// (corrupt data, a lying header, disk full), `dest` may hold partial output:
/// cleaning it up is the caller's job (it owns the temporary directory).
pub fn extract(
    archive: &Path,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<Extracted, ArchiveError> {
    let (mut zip, manifest) = open_and_inspect(archive, limits)?;
    ensure_empty_dir(dest)?;

    let root = manifest.root_folder.as_deref();
    let mut created_dirs: HashSet<String> = HashSet::new();
    for dir in &manifest.directories {
        let rel = strip_root(dir, root);
        if !rel.is_empty() {
            create_dirs(dest, rel, &mut created_dirs)?;
        }
    }

    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut total_written = 0u64;
    for file in &manifest.files {
        let rel = strip_root(&file.path, root);
        if let Some((parent, _)) = rel.rsplit_once('/') {
            create_dirs(dest, parent, &mut created_dirs)?;
        }
        let target = join_validated(dest, rel, &file.path)?;
        let out = create_new_file(&target)
            .map_err(|e| ArchiveError::io(format!("creating {target:?}"), e))?;
        let mut writer = CountingWriter {
            out,
            name: &file.path,
            declared: file.declared_size,
            written: 0,
            total: &mut total_written,
            max_total: limits.max_total_bytes,
        };
        let mut entry = zip
            .by_index(file.index)
            .map_err(|e| entry_zip_error(&file.path, e))?;
        copy_entry(&mut entry, &mut writer, &mut buffer)?;
    }

    Ok(Extracted {
        files: manifest.files.len(),
        bytes: total_written,
        manifest,
    })
}

fn ensure_empty_dir(dest: &Path) -> Result<(), ArchiveError> {
    let mut listing =
        std::fs::read_dir(dest).map_err(|e| ArchiveError::io(format!("listing {dest:?}"), e))?;
    match listing.next() {
        None => Ok(()),
        Some(_) => Err(ArchiveError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        }),
    }
}

fn strip_root<'a>(path: &'a str, root: Option<&str>) -> &'a str {
    let Some(root) = root else {
        return path;
    };
    match path.strip_prefix(root) {
        Some("") => "",
        Some(rest) => rest.strip_prefix('/').unwrap_or(path),
        None => path,
    }
}

/// Joins validated `/`-separated components onto `dest`, refusing (again)
/// anything that is not a plain name, so the result always stays inside.
fn join_validated(dest: &Path, rel: &str, name: &str) -> Result<PathBuf, ArchiveError> {
    let mut path = dest.to_path_buf();
    for component in rel.split('/') {
        let mut parts = Path::new(component).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(part)), None) => path.push(part),
            _ => {
                return Err(ArchiveError::PathTraversal {
                    name: display_name(name.as_bytes()),
                });
            }
        }
    }
    Ok(path)
}

/// Creates `rel` and each of its parents under `dest` with `create_dir`,
/// which fails rather than follow anything already there.
fn create_dirs(dest: &Path, rel: &str, created: &mut HashSet<String>) -> Result<(), ArchiveError> {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    let ends = rel
        .match_indices('/')
        .map(|(at, _)| at)
        .chain(std::iter::once(rel.len()));
    for end in ends {
        let prefix = &rel[..end];
        if created.contains(prefix) {
            continue;
        }
        let path = join_validated(dest, prefix, rel)?;
        builder
            .create(&path)
            .map_err(|e| ArchiveError::io(format!("creating directory {path:?}"), e))?;
        created.insert(prefix.to_owned());
    }
    Ok(())
}

/// Opens a new file for writing: never an existing path, never through a
/// symbolic link, mode 0o644 whatever the archive says.
fn create_new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64"
        )
    ))]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, O_NOFOLLOW);
    let file = options.open(path)?;
    // The umask may have removed bits; set exactly 0o644 on the open handle.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    Ok(file)
}

/// Writes one entry to disk, counting every byte: it refuses to go past the
/// entry's declared size or the archive-wide total, whatever the headers say.
struct CountingWriter<'a> {
    out: File,
    name: &'a str,
    declared: u64,
    written: u64,
    total: &'a mut u64,
    max_total: u64,
}

impl CountingWriter<'_> {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        let len = chunk.len() as u64;
        self.written = self.written.saturating_add(len);
        if self.written > self.declared {
            return Err(ArchiveError::SizeMismatch {
                name: display_name(self.name.as_bytes()),
                declared: self.declared,
                reason: "it holds more data".to_owned(),
            });
        }
        *self.total = self.total.saturating_add(len);
        if *self.total > self.max_total {
            return Err(ArchiveError::TooLarge {
                name: display_name(self.name.as_bytes()),
                total: *self.total,
                max: self.max_total,
            });
        }
        self.out
            .write_all(chunk)
            .map_err(|e| ArchiveError::io(format!("writing {:?}", self.name), e))
    }
}

/// Copies an entry through `writer` with a bounded buffer, then checks that
/// the entry produced exactly its declared size.
fn copy_entry(
    entry: &mut impl Read,
    writer: &mut CountingWriter<'_>,
    buffer: &mut [u8],
) -> Result<(), ArchiveError> {
    loop {
        let read = match entry.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(writer.name, writer.declared, e)),
        };
        writer.write_chunk(&buffer[..read])?;
    }
    if writer.written != writer.declared {
        return Err(ArchiveError::SizeMismatch {
            name: display_name(writer.name.as_bytes()),
            declared: writer.declared,
            reason: format!("it holds only {} bytes", writer.written),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::archive::test_zips::*;

    // ---------- happy paths ----------

    #[test]
    fn valid_nested_site_extracts_byte_for_byte() {
        let css = b"body { color: red; }\n".repeat(50);
        let deep = b"<p>deep</p>".to_vec();
        let bytes = build_zip(&[
            Item::Stored("index.html", b"<h1>hi</h1>"),
            Item::Dir("css/"),
            Item::Deflated("css/site.css", &css),
            Item::Deflated("a/b/c/deep.html", &deep),
            Item::Dir("empty/"),
        ]);
        let manifest = inspect_bytes(&bytes).unwrap();
        assert_eq!(manifest.root_folder, None);
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["index.html", "css/site.css", "a/b/c/deep.html"]);
        assert_eq!(manifest.total_bytes, (11 + css.len() + deep.len()) as u64);

        let (dest, result) = extract_bytes(&bytes);
        let extracted = result.unwrap();
        assert_eq!(extracted.files, 3);
        assert_eq!(extracted.bytes, manifest.total_bytes);
        let d = dest.path();
        assert_eq!(std::fs::read(d.join("index.html")).unwrap(), b"<h1>hi</h1>");
        assert_eq!(std::fs::read(d.join("css/site.css")).unwrap(), css);
        assert_eq!(std::fs::read(d.join("a/b/c/deep.html")).unwrap(), deep);
        assert!(d.join("empty").is_dir());
        assert_eq!(
            list_files(d),
            ["a/b/c/deep.html", "css/site.css", "index.html"]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("index.html"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o644);
        }
    }

    #[test]
    fn root_folder_is_detected_and_stripped() {
        let bytes = build_zip(&[
            Item::Dir("site/"),
            Item::Stored("site/index.html", b"home"),
            Item::Dir("site/css/"),
            Item::Deflated("site/css/x.css", b"a{}"),
            Item::Dir("__MACOSX/"),
            Item::Dir("__MACOSX/site/"),
            Item::Stored("__MACOSX/site/._index.html", b"\0\x05\x16\x07junk"),
            Item::Stored(".DS_Store", b"\0\0\0\x01Bud1"),
            Item::Stored("site/.DS_Store", b"\0\0\0\x01Bud1"),
        ]);
        let manifest = inspect_bytes(&bytes).unwrap();
        assert_eq!(manifest.root_folder.as_deref(), Some("site"));
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["site/index.html", "site/css/x.css"]);

        let (dest, result) = extract_bytes(&bytes);
        assert_eq!(result.unwrap().files, 2);
        assert_eq!(list_files(dest.path()), ["css/x.css", "index.html"]);
        assert_eq!(
            std::fs::read(dest.path().join("index.html")).unwrap(),
            b"home"
        );
    }

    #[test]
    fn single_top_level_file_is_not_a_root_folder() {
        let bytes = build_zip(&[Item::Stored("index.html", b"x")]);
        assert_eq!(inspect_bytes(&bytes).unwrap().root_folder, None);
        let (dest, result) = extract_bytes(&bytes);
        result.unwrap();
        assert_eq!(list_files(dest.path()), ["index.html"]);
    }

    /// Rewrites the uncompressed size of every local and central header.
    fn patch_uncompressed_size(bytes: &mut [u8], size: u32) {
        for at in 0..bytes.len().saturating_sub(4) {
            let offset = match &bytes[at..at + 4] {
                b"PK\x03\x04" => 22,
                b"PK\x01\x02" => 24,
                _ => continue,
            };
            bytes[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
        }
    }

    #[test]
    fn deflated_entry_larger_than_declared_is_cut_off() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        let mut bytes = build_zip(&[Item::Deflated("liar.bin", &data)]);
        patch_uncompressed_size(&mut bytes, 1000);
        let manifest = inspect_bytes(&bytes).unwrap();
        assert_eq!(manifest.files[0].declared_size, 1000);

        let (dest, result) = extract_bytes(&bytes);
        let err = result.unwrap_err();
        assert_eq!(err.code(), "archive_size_mismatch", "{err}");
        assert!(err.is_user_error());
        let written = std::fs::metadata(dest.path().join("liar.bin")).map_or(0, |m| m.len());
        assert!(written <= 1000, "wrote {written} bytes");
    }

    #[test]
    fn deflated_entry_smaller_than_declared_is_rejected() {
        let data = b"short content".repeat(10);
        let mut bytes = build_zip(&[Item::Deflated("short.txt", &data)]);
        patch_uncompressed_size(&mut bytes, 5000);
        let (_dest, result) = extract_bytes(&bytes);
        assert_eq!(result.unwrap_err().code(), "archive_size_mismatch");
    }

    #[test]
    fn crc_mismatch_is_corrupt() {
        let mut bytes = build_zip(&[Item::Stored("index.html", b"hello world")]);
        let at = bytes.windows(11).position(|w| w == b"hello world").unwrap();
        bytes[at] = b'j';
        inspect_bytes(&bytes).unwrap();
        let (_dest, result) = extract_bytes(&bytes);
        let err = result.unwrap_err();
        assert_eq!(err.code(), "archive_corrupt", "{err}");
        assert!(err.is_user_error());
    }

    #[test]
    fn destination_must_be_empty() {
        let zip = write_zip(&build_zip(&[Item::Stored("index.html", b"x")]));
        let dest = tempfile::tempdir().unwrap();
        std::fs::write(dest.path().join("index.html"), b"keep me").unwrap();
        let err = extract(&zip.path, dest.path(), &ArchiveLimits::default()).unwrap_err();
        assert_eq!(err.code(), "archive_destination_not_empty");
        assert!(!err.is_user_error());
        assert_eq!(
            std::fs::read(dest.path().join("index.html")).unwrap(),
            b"keep me"
        );
    }

    #[test]
    fn counting_writer_stops_at_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut total = 0;
        let mut writer = CountingWriter {
            out: create_new_file(&path).unwrap(),
            name: "out",
            declared: 10,
            written: 0,
            total: &mut total,
            max_total: 1000,
        };
        let mut buffer = [0u8; 4];
        let err = copy_entry(&mut io::repeat(b'x'), &mut writer, &mut buffer).unwrap_err();
        assert_eq!(err.code(), "archive_size_mismatch");
        assert!(std::fs::metadata(&path).unwrap().len() <= 10);
    }

    #[test]
    fn counting_writer_enforces_the_running_total() {
        let dir = tempfile::tempdir().unwrap();
        let mut total = 995;
        let mut writer = CountingWriter {
            out: create_new_file(&dir.path().join("out")).unwrap(),
            name: "out",
            declared: 100,
            written: 0,
            total: &mut total,
            max_total: 1000,
        };
        let err = copy_entry(&mut &[1u8; 100][..], &mut writer, &mut [0u8; 8]).unwrap_err();
        assert_eq!(err.code(), "archive_too_large");
    }

    // ---------- properties ----------

    fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"a".to_vec()),
            Just(b"index.html".to_vec()),
            Just(b"/".to_vec()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            Just(b"\\".to_vec()),
            Just(b":".to_vec()),
            Just(b"C:".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\xff".to_vec()),
            Just("é".as_bytes().to_vec()),
            Just("\u{202E}".as_bytes().to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn accepted_paths_stay_inside(names in prop::collection::vec(name_bytes(), 1..4)) {
            let entries: Vec<Raw> = names
                .iter()
                .map(|name| {
                    let mut entry = Raw::file("x", b"data");
                    entry.name = name.clone();
                    entry
                })
                .collect();
            if let Ok(manifest) = inspect_bytes(&raw_zip(&entries)) {
                let base = Path::new("/srv/site");
                for file in &manifest.files {
                    let path = &file.path;
                    prop_assert!(!path.is_empty() && !path.starts_with('/'));
                    prop_assert!(!path.contains('\\') && !path.chars().any(char::is_control));
                    for component in path.split('/') {
                        prop_assert!(!matches!(component, "" | "." | ".."), "{:?}", path);
                    }
                    let joined = join_validated(base, path, path).unwrap();
                    prop_assert!(joined.starts_with(base));
                    prop_assert!(joined
                        .components()
                        .skip(base.components().count())
                        .all(|c| matches!(c, Component::Normal(_))));
                }
            }
        }

        #[test]
        fn mutated_archives_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut bytes = build_zip(&[
                Item::Stored("index.html", b"<h1>hello</h1>"),
                Item::Deflated("css/site.css", &b"body{}".repeat(40)),
            ]);
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let (dest, result) = extract_bytes(&bytes);
            if let Err(err) = result {
                prop_assert!(!err.code().is_empty());
            }
            // Whatever happened, no link was created.
            for entry in std::fs::read_dir(dest.path()).unwrap() {
                let meta = std::fs::symlink_metadata(entry.unwrap().path()).unwrap();
                prop_assert!(!meta.file_type().is_symlink());
            }
        }
    }
}
