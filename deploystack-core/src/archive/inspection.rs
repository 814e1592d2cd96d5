//! Validating the central directory before extracting anything: names, types, sizes,
//! compression ratio, encryption, overlaps and duplicates, all checked without
//! decompressing a byte.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

use super::error::{ArchiveError, HEAD_BYTES, display_name, entry_zip_error, open_zip_error};

/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// The compression-ratio check only applies above this declared size, so that
/// small, highly compressible files (a CSS file full of spaces) still pass.
const RATIO_MIN_SIZE: u64 = MIB;
/// Longest accepted entry name, in bytes.
const MAX_NAME_BYTES: usize = 1024;
/// Longest accepted path component, in bytes (the usual file-system limit).
const MAX_COMPONENT_BYTES: usize = 255;

/// File-type bits of a unix mode (`S_IFMT`) and the types we care about.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Limits checked before anything is extracted.
#[derive(Debug, Clone)]
pub struct ArchiveLimits {
    /// Most central directory entries accepted (files, directories and ignored
    /// entries alike). Default 20 000.
    pub max_entries: usize,
    /// Most bytes all extracted files may add up to (declared and actual).
    /// Default 1 GiB.
    pub max_total_bytes: u64,
    /// Largest declared uncompressed size of one entry. Default 256 MiB.
    pub max_file_bytes: u64,
    /// Highest uncompressed/compressed ratio of one entry, checked only for
    /// entries whose declared uncompressed size is above 1 MiB. Default 200.
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_entries: 20_000,
            max_total_bytes: 1024 * MIB,
            max_file_bytes: 256 * MIB,
            max_ratio: 200,
        }
    }
}

/// What validation found: the list of files to extract, in archive order.
#[derive(Debug, Clone)]
pub struct ArchiveManifest {
    /// Regular files only (directories are implied), in archive order;
    /// ignored entries (`__MACOSX/`, `.DS_Store`) are excluded.
    pub files: Vec<ArchiveFile>,
    /// Explicit directory entries (normalized, without the trailing `/`, root
    /// folder not stripped), in archive order; extraction creates them even
    /// when they are empty.
    pub directories: Vec<String>,
    /// Sum of the declared sizes of `files`.
    pub total_bytes: u64,
    /// When every kept entry sits under one top-level folder (what GitHub
    /// "Download ZIP" and macOS Finder produce), that folder's name;
    /// extraction then strips it so the site is served from inside it.
    pub root_folder: Option<String>,
}

/// One regular file that [`extract`](super::extract) will write.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    /// Index of the entry in the archive's central directory.
    pub index: usize,
    /// Normalized relative path, `/`-separated, root folder NOT yet stripped.
    pub path: String,
    /// Uncompressed size the archive declares for this entry.
    pub declared_size: u64,
}

/// Validate from the central directory only: decompresses nothing (it reads
/// the central directory and each entry's small local header, to find where
/// its data starts for the overlap check).
pub fn inspect(archive: &Path, limits: &ArchiveLimits) -> Result<ArchiveManifest, ArchiveError> {
    open_and_inspect(archive, limits).map(|(_, manifest)| manifest)
}

pub(super) type Zip = ZipArchive<BufReader<File>>;

pub(super) fn open_and_inspect(
    archive: &Path,
    limits: &ArchiveLimits,
) -> Result<(Zip, ArchiveManifest), ArchiveError> {
    let mut file =
        File::open(archive).map_err(|e| ArchiveError::io(format!("opening {archive:?}"), e))?;
    // Kept to say what the upload is when it is no zip.
    let mut head = Vec::new();
    (&mut file)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .and_then(|_| file.rewind())
        .map_err(|e| ArchiveError::io(format!("reading {archive:?}"), e))?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| open_zip_error(e, &head))?;

    // Checked first: the zip crate indexes entries by name, so a duplicate
    // name hides the other entry from every per-index check below. Finding
    // which name it is needs a walk over the raw records.
    if zip.has_duplicate_names() {
        let name = File::open(archive)
            .and_then(|f| find_duplicate_raw_name(BufReader::new(f), zip.central_directory_start()))
            .map_err(|e| ArchiveError::io(format!("re-reading {archive:?}"), e))?;
        return Err(ArchiveError::DuplicateEntry {
            name: name.map_or_else(|| "<unknown>".to_owned(), |n| display_name(&n)),
        });
    }

    let manifest = inspect_zip(&mut zip, limits)?;
    Ok((zip, manifest))
}

/// One validated entry, before the archive-wide checks.
struct Entry {
    index: usize,
    path: String,
    is_dir: bool,
    size: u64,
    ignored: bool,
}

fn inspect_zip(zip: &mut Zip, limits: &ArchiveLimits) -> Result<ArchiveManifest, ArchiveError> {
    // Bounds the work done per upload (and the number of inodes created).
    if zip.len() > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            count: zip.len(),
            max: limits.max_entries,
        });
    }

    let mut entries = Vec::with_capacity(zip.len());
    let mut spans = Vec::with_capacity(zip.len());
    let mut seen_paths: HashSet<String> = HashSet::with_capacity(zip.len());
    let mut total = 0u64;
    for index in 0..zip.len() {
        // `by_index_raw` reads only the local header (for `data_start`); it
        // neither decompresses nor decrypts.
        let zip_entry = zip
            .by_index_raw(index)
            .map_err(|e| entry_zip_error(&format!("<entry #{index}>"), e))?;
        let raw_name = zip_entry.name_raw();
        let (path, named_dir) = validate_name(raw_name)?;
        let name = display_name(raw_name);

        // We cannot decrypt, and an encrypted entry cannot be checked.
        if zip_entry.encrypted() {
            return Err(ArchiveError::Encrypted { name });
        }
        // Only what the crate is built to decompress; anything else is odd.
        let method = zip_entry.compression();
        if !matches!(
            method,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(ArchiveError::UnsupportedCompression {
                name,
                method: format!("{method:?}"),
            });
        }

        // Links could point anywhere on the host once extracted; fifos,
        // devices and sockets have no place in a static site.
        let mode_type = zip_entry.unix_mode().map(|mode| (mode, mode & S_IFMT));
        let is_dir = match mode_type {
            Some((_, S_IFLNK)) => return Err(ArchiveError::SymbolicLink { name }),
            Some((_, S_IFDIR)) => true,
            // 0: some tools store permission bits without a file type.
            Some((_, 0 | S_IFREG)) | None => named_dir,
            Some((mode, _)) => return Err(ArchiveError::SpecialFile { name, mode }),
        };

        let size = zip_entry.size();
        let compressed = zip_entry.compressed_size();
        // A stored entry's two sizes are the same number; a mismatch is a
        // header lying about how much data follows.
        if method == CompressionMethod::Stored && size != compressed {
            return Err(ArchiveError::SizeMismatch {
                name,
                declared: size,
                reason: format!("stored entry has {compressed} bytes of data"),
            });
        }
        // Cheap per-file cap before any byte is written.
        if size > limits.max_file_bytes {
            return Err(ArchiveError::FileTooLarge {
                name,
                size,
                max: limits.max_file_bytes,
            });
        }
        // Zip bomb: real web content does not compress 200:1 at this size.
        if size > RATIO_MIN_SIZE && size > compressed.saturating_mul(limits.max_ratio) {
            return Err(ArchiveError::SuspiciousRatio {
                name,
                size,
                compressed,
                max_ratio: limits.max_ratio,
            });
        }

        // Where this entry's bytes live in the file, for the overlap check.
        let data_start = zip_entry
            .data_start()
            .ok_or_else(|| ArchiveError::Corrupt {
                name: name.clone(),
                reason: "could not locate its data".to_owned(),
            })?;
        let end = data_start
            .checked_add(compressed)
            .ok_or_else(|| ArchiveError::Corrupt {
                name: name.clone(),
                reason: "its data ends past the largest possible offset".to_owned(),
            })?;
        spans.push((zip_entry.header_start(), end, index));

        // Case-sensitive, like the Linux file system it lands on; `a/` and
        // `a` are the same path.
        if !seen_paths.insert(path.clone()) {
            return Err(ArchiveError::DuplicateEntry { name });
        }

        let ignored = is_ignored(&path);
        if !ignored && !is_dir {
            // Cap the sum of declared sizes before extracting anything.
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                return Err(ArchiveError::TooLarge {
                    name,
                    total,
                    max: limits.max_total_bytes,
                });
            }
        }
        entries.push(Entry {
            index,
            path,
            is_dir,
            size,
            ignored,
        });
    }

    check_overlaps(&mut spans, zip.central_directory_start(), &entries)?;
    check_conflicts(&entries)?;

    let kept: Vec<&Entry> = entries.iter().filter(|e| !e.ignored).collect();
    // Nothing to deploy: say so rather than publish an empty site.
    if !kept.iter().any(|e| !e.is_dir) {
        return Err(ArchiveError::Empty);
    }

    Ok(ArchiveManifest {
        files: kept
            .iter()
            .filter(|e| !e.is_dir)
            .map(|e| ArchiveFile {
                index: e.index,
                path: e.path.clone(),
                declared_size: e.size,
            })
            .collect(),
        directories: kept
            .iter()
            .filter(|e| e.is_dir)
            .map(|e| e.path.clone())
            .collect(),
        total_bytes: total,
        root_folder: detect_root_folder(&kept),
    })
}

/// The file paths of a source given some other way than as a zip (a manifest of blobs), held
/// to the rules of zip entry names: clean UTF-8, relative, no `..`, `.` or empty parts, no
/// backslashes, drive letters, control or invisible characters, bounded lengths; a
/// trailing `/` (a folder) is refused. Then no path may be given twice, and none may be both
/// a file and the folder of another. Paths the archive rules ignore (`__MACOSX/`,
/// `.DS_Store`) are reported in the answer's `ignored` positions so the caller drops them.
///
/// Returns the normalized path of each input, in order.
pub fn check_paths<'a>(
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, bool)>, ArchiveError> {
    let mut checked = Vec::new();
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for (index, raw) in paths.into_iter().enumerate() {
        let (path, is_dir) = validate_name(raw.as_bytes())?;
        if is_dir {
            return Err(ArchiveError::InvalidName {
                name: display_name(raw.as_bytes()),
                reason: "a folder, not a file",
            });
        }
        if !seen.insert(path.clone()) {
            return Err(ArchiveError::DuplicateEntry { name: path });
        }
        let ignored = is_ignored(&path);
        entries.push(Entry {
            index,
            path: path.clone(),
            is_dir: false,
            size: 0,
            ignored,
        });
        checked.push((path, ignored));
    }
    check_conflicts(&entries)?;
    Ok(checked)
}

/// Validates a raw entry name and returns its normalized path (no trailing
/// `/`) and whether the name marks a directory (trailing `/`).
fn validate_name(raw: &[u8]) -> Result<(String, bool), ArchiveError> {
    let name = display_name(raw);
    // Bounded names keep paths within PATH_MAX and messages readable.
    if raw.len() > MAX_NAME_BYTES {
        return Err(ArchiveError::NameTooLong {
            name,
            what: "name",
            max: MAX_NAME_BYTES,
        });
    }
    // Raw bytes are never guessed at (CP437…): a name must be UTF-8.
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(ArchiveError::InvalidName {
            name,
            reason: "not valid UTF-8",
        });
    };
    if text.is_empty() {
        return Err(ArchiveError::InvalidName {
            name,
            reason: "empty name",
        });
    }
    // NUL truncates paths in C APIs; other controls forge log lines and
    // terminal output.
    if text
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(ArchiveError::ControlCharacter { name });
    }
    // Invisible and bidirectional formatting characters make a name display
    // as something it is not.
    if text.chars().any(is_invisible_format_char) {
        return Err(ArchiveError::InvalidName {
            name,
            reason: "invisible or bidirectional formatting character",
        });
    }
    // A separator on Windows and an escape trick elsewhere: `..\..\x`.
    if text.contains('\\') {
        return Err(ArchiveError::Backslash { name });
    }
    // `/etc/passwd` would be joined as an absolute path.
    if text.starts_with('/') {
        return Err(ArchiveError::AbsolutePath { name });
    }
    // `C:` / `C:x` mean a drive on Windows; no legitimate site needs it.
    if text
        .split('/')
        .next()
        .is_some_and(|first| first.contains(':'))
    {
        return Err(ArchiveError::DriveLetter { name });
    }

    let (body, is_dir) = match text.strip_suffix('/') {
        Some(body) => (body, true),
        None => (text, false),
    };
    for component in body.split('/') {
        match component {
            // `..` anywhere: even `a/../b`, which a clean archive never has.
            ".." => return Err(ArchiveError::PathTraversal { name }),
            // `a//b`, `./a`: ambiguous, and never produced by real tools.
            "" => {
                return Err(ArchiveError::InvalidName {
                    name,
                    reason: "empty path component",
                });
            }
            "." => {
                return Err(ArchiveError::InvalidName {
                    name,
                    reason: "\".\" path component",
                });
            }
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(ArchiveError::NameTooLong {
                    name,
                    what: "component",
                    max: MAX_COMPONENT_BYTES,
                });
            }
            _ => {}
        }
    }
    Ok((body.to_owned(), is_dir))
}

/// Zero-width, byte-order-mark and bidirectional control characters.
fn is_invisible_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// macOS Finder adds `__MACOSX/` resource forks and `.DS_Store` files; they
/// are not part of the site.
fn is_ignored(path: &str) -> bool {
    path.split('/').next() == Some("__MACOSX") || path.rsplit('/').next() == Some(".DS_Store")
}

/// Rejects entries that share bytes with another entry or with the central
/// directory. Fifield-style non-recursive zip bombs point many records at the
/// same compressed data, so a small file expands to a huge total.
fn check_overlaps(
    spans: &mut [(u64, u64, usize)],
    central_directory_start: u64,
    entries: &[Entry],
) -> Result<(), ArchiveError> {
    // `entries` holds every entry, so an entry's index is its position.
    let name_of = |index: usize| {
        entries
            .get(index)
            .map_or_else(|| format!("<entry #{index}>"), |e| e.path.clone())
    };
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let [(_, prev_end, prev), (next_start, _, next)] = pair else {
            continue;
        };
        if prev_end > next_start {
            return Err(ArchiveError::OverlappingEntries {
                name: name_of(*next),
                other: format!("entry {:?}", name_of(*prev)),
            });
        }
    }
    if let Some((_, _, index)) = spans
        .iter()
        .find(|(_, end, _)| *end > central_directory_start)
    {
        return Err(ArchiveError::OverlappingEntries {
            name: name_of(*index),
            other: "the central directory".to_owned(),
        });
    }
    Ok(())
}

/// Rejects a file whose path another entry uses as a directory (`a` and
/// `a/b`): one of them could not be extracted, and which one wins would
/// depend on the order.
fn check_conflicts(entries: &[Entry]) -> Result<(), ArchiveError> {
    let mut dirs: HashSet<&str> = HashSet::new();
    for entry in entries {
        if entry.is_dir {
            dirs.insert(&entry.path);
        }
        let mut rest = entry.path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            dirs.insert(parent);
            rest = parent;
        }
    }
    match entries
        .iter()
        .find(|e| !e.is_dir && dirs.contains(e.path.as_str()))
    {
        Some(file) => Err(ArchiveError::PathConflict {
            name: file.path.clone(),
        }),
        None => Ok(()),
    }
}

/// The single top-level folder holding every kept entry, if there is one. A
/// top-level file means there is no root folder.
fn detect_root_folder(kept: &[&Entry]) -> Option<String> {
    let mut root: Option<&str> = None;
    for entry in kept {
        let first = match entry.path.split_once('/') {
            Some((first, _)) => first,
            None if entry.is_dir => entry.path.as_str(),
            None => return None,
        };
        match root {
            Some(r) if r != first => return None,
            _ => root = Some(first),
        }
    }
    root.map(str::to_owned)
}

/// Walks the raw central directory records from `start` and returns the first
/// name seen twice. Only used to name the culprit once the zip crate has said
/// there is a duplicate.
fn find_duplicate_raw_name(
    mut reader: impl Read + Seek,
    start: u64,
) -> io::Result<Option<Vec<u8>>> {
    const SIGNATURE: [u8; 4] = *b"PK\x01\x02";
    reader.seek(SeekFrom::Start(start))?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut fixed = [0u8; 46];
    loop {
        match reader.read_exact(&mut fixed) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        if fixed[..4] != SIGNATURE {
            return Ok(None);
        }
        let field = |at: usize| u16::from_le_bytes([fixed[at], fixed[at + 1]]);
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let mut name = vec![0u8; usize::from(name_len)];
        reader.read_exact(&mut name)?;
        reader.seek(SeekFrom::Current(
            i64::from(extra_len) + i64::from(comment_len),
        ))?;
        if !seen.insert(name.clone()) {
            return Ok(Some(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_zips::*;

    #[test]
    fn two_top_level_folders_have_no_root_folder() {
        let bytes = build_zip(&[
            Item::Stored("a/x.html", b"x"),
            Item::Stored("b/y.html", b"y"),
        ]);
        assert_eq!(inspect_bytes(&bytes).unwrap().root_folder, None);
    }

    #[test]
    fn tiny_highly_compressible_file_passes_ratio_check() {
        let zeros = vec![0u8; 512 * 1024];
        let bytes = build_zip(&[Item::Deflated("blank.txt", &zeros)]);
        inspect_bytes(&bytes).unwrap();
    }

    // ---------- rule 1: not a zip ----------

    #[test]
    fn garbage_is_not_a_zip() {
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        let msg = assert_rejected(&garbage, "archive_invalid");
        assert!(
            msg.starts_with("the upload is not a zip archive: send a zip archive of your site"),
            "{msg}"
        );
        let text = assert_rejected(b"<!doctype html><p>hello</p>", "archive_invalid");
        assert_eq!(text, msg);
        assert!(!msg.contains("EOCD"), "{msg}");
    }

    #[test]
    fn empty_file_is_not_a_zip() {
        let msg = assert_rejected(b"", "archive_invalid");
        assert_eq!(
            msg,
            "the upload is empty (0 bytes): send a zip archive of your site \
             (for example `zip -r site.zip .` in its folder)"
        );
    }

    #[test]
    fn other_archive_formats_are_named() {
        let gzip = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 1, 2, 3];
        let msg = assert_rejected(&gzip, "archive_invalid");
        assert!(
            msg.starts_with("the upload is not a zip archive, it looks like a gzip file"),
            "{msg}"
        );
        let mut tar = vec![0u8; 1024];
        tar[..10].copy_from_slice(b"index.html");
        tar[257..263].copy_from_slice(b"ustar\0");
        let msg = assert_rejected(&tar, "archive_invalid");
        assert!(msg.contains("it looks like a tar archive"), "{msg}");
        let msg = assert_rejected(b"Rar!\x1a\x07\x00 and more", "archive_invalid");
        assert!(msg.contains("it looks like a RAR archive"), "{msg}");
    }

    #[test]
    fn truncated_zip_is_an_error_not_a_panic() {
        let bytes = build_zip(&[Item::Stored("index.html", b"hello")]);
        for cut in 0..bytes.len() {
            let _ = inspect_bytes(&bytes[..cut]);
        }
        let msg = assert_rejected(&bytes[..bytes.len() - 5], "archive_invalid");
        assert!(
            msg.starts_with("the upload starts like a zip archive, but its table of contents"),
            "{msg}"
        );
        assert!(msg.contains("truncated or damaged"), "{msg}");
    }

    #[test]
    fn missing_archive_is_our_io_error() {
        let err = inspect(
            Path::new("/nonexistent/upload.zip"),
            &ArchiveLimits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "archive_io");
        assert!(!err.is_user_error());
    }

    // ---------- rule 2: entry count ----------

    #[test]
    fn too_many_entries() {
        let bytes = build_zip(&[
            Item::Stored("a", b"1"),
            Item::Stored("b", b"2"),
            Item::Stored("c", b"3"),
        ]);
        let limits = ArchiveLimits {
            max_entries: 2,
            ..ArchiveLimits::default()
        };
        let err = inspect_bytes_with(&bytes, &limits).unwrap_err();
        assert_eq!(err.code(), "archive_too_many_entries");
    }

    // ---------- rule 3: sizes ----------

    #[test]
    fn file_too_large() {
        let bytes = build_zip(&[Item::Stored("big.bin", &[7u8; 2000])]);
        let limits = ArchiveLimits {
            max_file_bytes: 1000,
            ..ArchiveLimits::default()
        };
        let err = inspect_bytes_with(&bytes, &limits).unwrap_err();
        assert_eq!(err.code(), "archive_file_too_large");
        assert!(err.to_string().contains("\"big.bin\""), "{err}");
    }

    #[test]
    fn total_too_large() {
        let bytes = build_zip(&[
            Item::Stored("a.bin", &[1u8; 600]),
            Item::Stored("b.bin", &[2u8; 600]),
        ]);
        let limits = ArchiveLimits {
            max_total_bytes: 1000,
            ..ArchiveLimits::default()
        };
        let err = inspect_bytes_with(&bytes, &limits).unwrap_err();
        assert_eq!(err.code(), "archive_too_large");
        assert!(err.to_string().contains("\"b.bin\""), "{err}");
    }

    // ---------- rule 4: zip bomb ratio ----------

    #[test]
    fn zip_bomb_ratio() {
        let zeros = vec![0u8; 2 * 1024 * 1024];
        let bytes = build_zip(&[Item::Deflated("bomb.bin", &zeros)]);
        let msg = assert_rejected(&bytes, "archive_suspicious_ratio");
        assert!(msg.contains("\"bomb.bin\""), "{msg}");
    }

    // ---------- rule 5: names ----------

    #[test]
    fn invalid_utf8_name() {
        assert_rejected(&single_raw(b"caf\xe9.html"), "archive_invalid_name");
    }

    #[test]
    fn invisible_bidi_name() {
        assert_rejected(
            &single_raw("evil\u{202E}lmth.exe".as_bytes()),
            "archive_invalid_name",
        );
    }

    #[test]
    fn control_characters() {
        assert_rejected(&single_raw(b"a\0b.html"), "archive_control_character");
        let msg = assert_rejected(&single_raw(b"log\ninjection"), "archive_control_character");
        assert!(msg.contains("\\n"), "control char must be escaped: {msg}");
        assert!(!msg.contains('\n'));
        assert_rejected(&single_raw(b"esc\x1b[31m"), "archive_control_character");
        assert_rejected(
            &single_raw("del\u{7f}".as_bytes()),
            "archive_control_character",
        );
    }

    #[test]
    fn backslash() {
        assert_rejected(&single_raw(b"..\\..\\evil"), "archive_backslash");
        assert_rejected(&single_raw(b"dir\\file.html"), "archive_backslash");
    }

    #[test]
    fn absolute_path() {
        assert_rejected(&single_raw(b"/etc/passwd"), "archive_absolute_path");
    }

    #[test]
    fn drive_letter() {
        assert_rejected(&single_raw(b"C:/Windows/x.html"), "archive_drive_letter");
        assert_rejected(&single_raw(b"C:x.html"), "archive_drive_letter");
        // A colon further down is harmless on Linux.
        inspect_bytes(&single_raw(b"a/b:c.html")).unwrap();
    }

    #[test]
    fn path_traversal() {
        let msg = assert_rejected(&single_raw(b"../etc/passwd"), "archive_path_traversal");
        assert_eq!(
            msg,
            r#"entry "../etc/passwd" escapes the archive root ("..")"#
        );
        assert_rejected(&single_raw(b"a/../b"), "archive_path_traversal");
        assert_rejected(&single_raw(b"a/.."), "archive_path_traversal");
    }

    #[test]
    fn dot_and_empty_components() {
        assert_rejected(&single_raw(b"./index.html"), "archive_invalid_name");
        assert_rejected(&single_raw(b"a/./b"), "archive_invalid_name");
        assert_rejected(&single_raw(b"a//b"), "archive_invalid_name");
        assert_rejected(&single_raw(b""), "archive_invalid_name");
    }

    #[test]
    fn names_too_long() {
        let long_name = format!("{}/x", ["d"; 600].join("/"));
        assert!(long_name.len() > MAX_NAME_BYTES);
        let msg = assert_rejected(&single_raw(long_name.as_bytes()), "archive_name_too_long");
        assert!(msg.len() < 600, "long names are cut in messages");
        let long_component = "c".repeat(256);
        assert_rejected(
            &single_raw(long_component.as_bytes()),
            "archive_name_too_long",
        );
    }

    // ---------- rule 6: duplicates and conflicts ----------

    #[test]
    fn duplicate_raw_names() {
        let bytes = raw_zip(&[
            Raw::file("index.html", b"first"),
            Raw::file("other.html", b"x"),
            Raw::file("index.html", b"second"),
        ]);
        let msg = assert_rejected(&bytes, "archive_duplicate_entry");
        assert!(msg.contains("\"index.html\""), "{msg}");
    }

    #[test]
    fn duplicate_file_and_directory_names() {
        let bytes = raw_zip(&[Raw::file("a", b"file"), Raw::file("a/", b"")]);
        assert_rejected(&bytes, "archive_duplicate_entry");
    }

    #[test]
    fn case_differences_are_not_duplicates() {
        let bytes = build_zip(&[Item::Stored("A.html", b"1"), Item::Stored("a.html", b"2")]);
        assert_eq!(inspect_bytes(&bytes).unwrap().files.len(), 2);
    }

    #[test]
    fn file_used_as_directory_conflicts() {
        let bytes = build_zip(&[Item::Stored("a", b"file"), Item::Stored("a/b", b"nested")]);
        let msg = assert_rejected(&bytes, "archive_path_conflict");
        assert!(msg.contains("\"a\""), "{msg}");
        let reversed = build_zip(&[Item::Stored("a/b/c", b"nested"), Item::Stored("a/b", b"x")]);
        assert_rejected(&reversed, "archive_path_conflict");
    }

    // ---------- rule 7: links and special files ----------

    #[test]
    fn symbolic_link() {
        let bytes = build_zip(&[
            Item::Stored("index.html", b"x"),
            Item::Symlink("passwd", "/etc/passwd"),
        ]);
        let msg = assert_rejected(&bytes, "archive_symlink");
        assert!(msg.contains("\"passwd\""), "{msg}");
    }

    #[test]
    fn special_files() {
        for kind in [0o010_000u32, 0o020_000, 0o060_000, 0o140_000] {
            let mut entry = Raw::file("odd", b"");
            entry.external = (kind | 0o644) << 16;
            assert_rejected(&raw_zip(&[entry]), "archive_special_file");
        }
    }

    // ---------- rule 8: encryption ----------

    #[test]
    fn encrypted_entry() {
        let mut entry = Raw::file("secret.html", &[0x55; 24]);
        entry.flags = 1;
        assert_rejected(&raw_zip(&[entry]), "archive_encrypted");
    }

    // ---------- rule 9: compression method ----------

    #[test]
    fn unsupported_compression() {
        let mut entry = Raw::file("x.bz2", b"BZh91AY&SY");
        entry.method = 12; // bzip2
        entry.size = Some(100);
        assert_rejected(&raw_zip(&[entry]), "archive_unsupported_compression");
    }

    // ---------- rule 10: overlapping entries ----------

    #[test]
    fn overlapping_entries() {
        let mut twin = Raw::file("copy.html", b"shared data");
        twin.share_local_with = Some(0);
        let bytes = raw_zip(&[Raw::file("index.html", b"shared data"), twin]);
        let msg = assert_rejected(&bytes, "archive_overlapping_entries");
        assert!(
            msg.contains("index.html") && msg.contains("copy.html"),
            "{msg}"
        );
    }

    // ---------- rules 11, 12: ignored entries and empty archives ----------

    #[test]
    fn only_ignored_entries_is_empty() {
        let bytes = build_zip(&[
            Item::Dir("site/"),
            Item::Stored(".DS_Store", b"x"),
            Item::Stored("__MACOSX/._x", b"y"),
        ]);
        let msg = assert_rejected(&bytes, "archive_empty");
        assert_eq!(msg, "the archive contains no files");
    }

    #[test]
    fn archive_with_no_entries_is_empty() {
        assert_rejected(&raw_zip(&[]), "archive_empty");
    }

    #[test]
    fn stored_entry_with_lying_size_is_rejected_before_extraction() {
        let mut entry = Raw::file("liar.html", &[b'x'; 5000]);
        entry.size = Some(10);
        assert_rejected(&raw_zip(&[entry]), "archive_size_mismatch");
    }
}
