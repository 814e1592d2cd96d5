//! Safe inspection and extraction of user-uploaded zip archives.
//!
//! Every upload is hostile until proven otherwise. A zip archive can carry
//! names such as `../../etc/cron.d/x` or `/root/.ssh/authorized_keys`,
//! symbolic links that point anywhere on the host, several entries with the
//! same name, entries that decompress to gigabytes (zip bombs, including the
//! "overlapping entries" kind), and headers that lie about their sizes.
//!
//! The `zip` crate's own `ZipArchive::extract` is not a fit for this: it
//! recreates symbolic links verbatim, does not cap sizes, and its name index
//! silently keeps only one of several entries with the same name. So this
//! module walks the central directory itself:
//!
//! 1. [`inspect`] validates every central directory record (names, types,
//!    sizes, compression ratio, encryption, overlaps, duplicates) without
//!    decompressing anything, and returns an [`ArchiveManifest`].
//! 2. [`extract`] runs [`inspect`] first, then writes only regular files and
//!    directories under the destination, built from validated path components,
//!    never overwriting anything and never trusting declared sizes.
//!
//! Both functions are blocking; async callers should use `spawn_blocking`.

use std::collections::HashSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// The compression-ratio check only applies above this declared size, so that
/// small, highly compressible files (a CSS file full of spaces) still pass.
const RATIO_MIN_SIZE: u64 = MIB;
/// Longest accepted entry name, in bytes.
const MAX_NAME_BYTES: usize = 1024;
/// Longest accepted path component, in bytes (the usual file-system limit).
const MAX_COMPONENT_BYTES: usize = 255;
/// Entry names are cut to this many characters inside error messages.
const MAX_DISPLAYED_NAME_CHARS: usize = 256;
/// Size of the buffer used to copy one entry to disk.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// File-type bits of a unix mode (`S_IFMT`) and the types we care about.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

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

/// One regular file that [`extract`] will write.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    /// Index of the entry in the archive's central directory.
    pub index: usize,
    /// Normalized relative path, `/`-separated, root folder NOT yet stripped.
    pub path: String,
    /// Uncompressed size the archive declares for this entry.
    pub declared_size: u64,
}

/// Result of a successful [`extract`].
#[derive(Debug, Clone)]
pub struct Extracted {
    /// Number of regular files written.
    pub files: usize,
    /// Bytes actually written (not the declared sizes).
    pub bytes: u64,
    /// The manifest [`inspect`] produced; `root_folder`, when set, was
    /// stripped, so the site sits directly in the destination directory.
    pub manifest: ArchiveManifest,
}

/// Why an archive was refused, or why we failed to handle it.
///
/// Entry names in messages are escaped with `{:?}` so that control
/// characters cannot inject anything into logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not a zip file: empty, garbage, or an unreadable central directory.
    #[error("the upload is not a valid zip archive: {reason}")]
    NotAZip {
        /// What the zip reader reported.
        reason: String,
    },
    /// An entry's data could not be read back (bad CRC, broken deflate
    /// stream, bad local header).
    #[error("entry {name:?} is corrupt: {reason}")]
    Corrupt {
        /// Offending entry.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// More central directory entries than allowed.
    #[error("the archive has {count} entries, more than the limit of {max}")]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One entry declares more bytes than allowed.
    #[error("entry {name:?} is {size} bytes uncompressed, more than the per-file limit of {max}")]
    FileTooLarge {
        /// Offending entry.
        name: String,
        /// Its declared uncompressed size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// All files together are larger than allowed.
    #[error("the archive expands to more than {max} bytes (at least {total} by entry {name:?})")]
    TooLarge {
        /// The entry that went over the limit.
        name: String,
        /// Bytes counted so far, including that entry.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// An entry compresses far better than real content does: a zip bomb.
    #[error(
        "entry {name:?} expands from {compressed} to {size} bytes, a ratio above the limit of {max_ratio}"
    )]
    SuspiciousRatio {
        /// Offending entry.
        name: String,
        /// Declared uncompressed size.
        size: u64,
        /// Compressed size.
        compressed: u64,
        /// The limit.
        max_ratio: u64,
    },
    /// A name that is not clean UTF-8 or has empty, `.` or invisible parts.
    #[error("entry {name:?} has an invalid name ({reason})")]
    InvalidName {
        /// Offending entry (lossily decoded when not UTF-8).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name, or one of its components, is too long.
    #[error("entry {name:?} has a name longer than {max} bytes ({what})")]
    NameTooLong {
        /// Offending entry (cut for display).
        name: String,
        /// `"name"` or `"component"`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A name holds NUL or another control character.
    #[error("entry {name:?} has a control character in its name")]
    ControlCharacter {
        /// Offending entry.
        name: String,
    },
    /// A name holds a backslash (a Windows separator, or an escape attempt).
    #[error("entry {name:?} has a backslash in its name")]
    Backslash {
        /// Offending entry.
        name: String,
    },
    /// A name starts with `/`.
    #[error("entry {name:?} is an absolute path")]
    AbsolutePath {
        /// Offending entry.
        name: String,
    },
    /// The first component has a `:` (a drive letter such as `C:`).
    #[error("entry {name:?} starts with a drive letter or has ':' in its first component")]
    DriveLetter {
        /// Offending entry.
        name: String,
    },
    /// A name has a `..` component.
    #[error("entry {name:?} escapes the archive root (\"..\")")]
    PathTraversal {
        /// Offending entry.
        name: String,
    },
    /// Two entries have the same (normalized) path.
    #[error("entry {name:?} appears more than once in the archive")]
    DuplicateEntry {
        /// Offending entry.
        name: String,
    },
    /// A path is a file in one entry and a directory in another.
    #[error("entry {name:?} is a file, but another entry uses it as a directory")]
    PathConflict {
        /// The file whose path is also a directory.
        name: String,
    },
    /// A symbolic link.
    #[error("entry {name:?} is a symbolic link, which is not allowed")]
    SymbolicLink {
        /// Offending entry.
        name: String,
    },
    /// A fifo, device, socket or other non-regular file.
    #[error("entry {name:?} is a special file (unix mode {mode:#o}), which is not allowed")]
    SpecialFile {
        /// Offending entry.
        name: String,
        /// Its unix mode.
        mode: u32,
    },
    /// An encrypted entry.
    #[error("entry {name:?} is encrypted, which is not supported")]
    Encrypted {
        /// Offending entry.
        name: String,
    },
    /// A compression method other than stored or deflated.
    #[error("entry {name:?} uses an unsupported compression method ({method})")]
    UnsupportedCompression {
        /// Offending entry.
        name: String,
        /// The method, as the zip crate names it.
        method: String,
    },
    /// Two entries share bytes, or an entry runs into the central directory.
    #[error("entry {name:?} overlaps {other} in the archive file")]
    OverlappingEntries {
        /// Offending entry.
        name: String,
        /// Description of what it overlaps (another entry's name, quoted, or
        /// "the central directory").
        other: String,
    },
    /// An entry holds a different amount of data than it declares.
    #[error("entry {name:?} does not match its declared size of {declared} bytes ({reason})")]
    SizeMismatch {
        /// Offending entry.
        name: String,
        /// Declared uncompressed size.
        declared: u64,
        /// What was found instead.
        reason: String,
    },
    /// Nothing to deploy once ignored entries are left out.
    #[error("the archive contains no files")]
    Empty,
    /// The destination given to [`extract`] is not an empty directory.
    #[error("destination {path:?} is not an empty directory")]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// Our own I/O failed (opening the upload, creating files, disk full…).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// Stable machine-readable code, e.g. `"archive_path_traversal"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAZip { .. } => "archive_invalid",
            Self::Corrupt { .. } => "archive_corrupt",
            Self::TooManyEntries { .. } => "archive_too_many_entries",
            Self::FileTooLarge { .. } => "archive_file_too_large",
            Self::TooLarge { .. } => "archive_too_large",
            Self::SuspiciousRatio { .. } => "archive_suspicious_ratio",
            Self::InvalidName { .. } => "archive_invalid_name",
            Self::NameTooLong { .. } => "archive_name_too_long",
            Self::ControlCharacter { .. } => "archive_control_character",
            Self::Backslash { .. } => "archive_backslash",
            Self::AbsolutePath { .. } => "archive_absolute_path",
            Self::DriveLetter { .. } => "archive_drive_letter",
            Self::PathTraversal { .. } => "archive_path_traversal",
            Self::DuplicateEntry { .. } => "archive_duplicate_entry",
            Self::PathConflict { .. } => "archive_path_conflict",
            Self::SymbolicLink { .. } => "archive_symlink",
            Self::SpecialFile { .. } => "archive_special_file",
            Self::Encrypted { .. } => "archive_encrypted",
            Self::UnsupportedCompression { .. } => "archive_unsupported_compression",
            Self::OverlappingEntries { .. } => "archive_overlapping_entries",
            Self::SizeMismatch { .. } => "archive_size_mismatch",
            Self::Empty => "archive_empty",
            Self::DestinationNotEmpty { .. } => "archive_destination_not_empty",
            Self::Io { .. } => "archive_io",
        }
    }

    /// `true` for problems with the user's archive (HTTP 400/413/422),
    /// `false` for our own failures (HTTP 500).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Io { .. } | Self::DestinationNotEmpty { .. })
    }

    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Validate from the central directory only: decompresses nothing (it reads
/// the central directory and each entry's small local header, to find where
/// its data starts for the overlap check).
pub fn inspect(archive: &Path, limits: &ArchiveLimits) -> Result<ArchiveManifest, ArchiveError> {
    open_and_inspect(archive, limits).map(|(_, manifest)| manifest)
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

type Zip = ZipArchive<BufReader<File>>;

fn open_and_inspect(
    archive: &Path,
    limits: &ArchiveLimits,
) -> Result<(Zip, ArchiveManifest), ArchiveError> {
    let file =
        File::open(archive).map_err(|e| ArchiveError::io(format!("opening {archive:?}"), e))?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(open_zip_error)?;

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

/// Entry name for messages: lossy UTF-8, cut to a readable length. Messages
/// print it with `{:?}`, which escapes control characters.
fn display_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.chars().count() <= MAX_DISPLAYED_NAME_CHARS {
        return text.into_owned();
    }
    let mut cut: String = text.chars().take(MAX_DISPLAYED_NAME_CHARS).collect();
    cut.push('…');
    cut
}

fn open_zip_error(error: ZipError) -> ArchiveError {
    match error {
        ZipError::Io(e) if !is_data_error(&e) => ArchiveError::io("reading the archive", e),
        other => ArchiveError::NotAZip {
            reason: other.to_string(),
        },
    }
}

fn entry_zip_error(name: &str, error: ZipError) -> ArchiveError {
    match error {
        ZipError::Io(e) => read_error(name, 0, e),
        other => ArchiveError::Corrupt {
            name: display_name(name.as_bytes()),
            reason: other.to_string(),
        },
    }
}

/// Errors reading entry data: bad data is the user's problem, anything else
/// (EIO…) ours.
fn read_error(name: &str, declared: u64, error: io::Error) -> ArchiveError {
    let name = display_name(name.as_bytes());
    if !is_data_error(&error) {
        return ArchiveError::io(format!("reading entry {name:?}"), error);
    }
    let reason = error.to_string();
    // zip 9 bounds its reader by the declared size and reports it with this
    // message; our counting writer below is the backstop if that changes.
    if reason.contains("declared uncompressed size") {
        return ArchiveError::SizeMismatch {
            name,
            declared,
            reason: "it holds more data".to_owned(),
        };
    }
    ArchiveError::Corrupt { name, reason }
}

fn is_data_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
    )
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
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    // ---------- helpers ----------

    /// A test archive on disk; the temp dir is removed on drop.
    struct TestZip {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn write_zip(bytes: &[u8]) -> TestZip {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload.zip");
        std::fs::write(&path, bytes).unwrap();
        TestZip { _dir: dir, path }
    }

    enum Item<'a> {
        Stored(&'a str, &'a [u8]),
        Deflated(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    /// Builds a zip in memory with `zip::ZipWriter`.
    fn build_zip(items: &[Item<'_>]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for item in items {
            match item {
                Item::Stored(name, data) => {
                    writer.start_file(*name, stored).unwrap();
                    writer.write_all(data).unwrap();
                }
                Item::Deflated(name, data) => {
                    writer.start_file(*name, deflated).unwrap();
                    writer.write_all(data).unwrap();
                }
                Item::Dir(name) => writer.add_directory(*name, stored).unwrap(),
                Item::Symlink(name, target) => writer.add_symlink(*name, *target, stored).unwrap(),
            }
        }
        writer.finish().unwrap().into_inner()
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// One record for the hand-rolled writer, for archives `ZipWriter`
    /// refuses to produce.
    #[derive(Clone)]
    struct Raw {
        name: Vec<u8>,
        data: Vec<u8>,
        method: u16,
        flags: u16,
        external: u32,
        /// Declared uncompressed size (default: `data.len()`).
        size: Option<u32>,
        /// Point the central record at this earlier entry's local header
        /// instead of writing one.
        share_local_with: Option<usize>,
    }

    impl Raw {
        fn file(name: &str, data: &[u8]) -> Self {
            Self {
                name: name.as_bytes().to_vec(),
                data: data.to_vec(),
                method: 0,
                flags: 0,
                external: 0o100_644 << 16,
                size: None,
                share_local_with: None,
            }
        }
    }

    /// Hand-rolled zip writer (stored data as given, unix "made by").
    fn raw_zip(entries: &[Raw]) -> Vec<u8> {
        fn u16le(out: &mut Vec<u8>, v: u16) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        fn u32le(out: &mut Vec<u8>, v: u32) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut out = Vec::new();
        let mut offsets: Vec<u32> = Vec::new();
        for e in entries {
            if let Some(j) = e.share_local_with {
                offsets.push(offsets[j]);
                continue;
            }
            offsets.push(out.len() as u32);
            out.extend_from_slice(b"PK\x03\x04");
            u16le(&mut out, 20);
            u16le(&mut out, e.flags);
            u16le(&mut out, e.method);
            u16le(&mut out, 0); // time
            u16le(&mut out, 0x21); // date: 1980-01-01
            u32le(&mut out, crc32(&e.data));
            u32le(&mut out, e.data.len() as u32);
            u32le(&mut out, e.size.unwrap_or(e.data.len() as u32));
            u16le(&mut out, e.name.len() as u16);
            u16le(&mut out, 0);
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&e.data);
        }
        let cd_start = out.len() as u32;
        for (e, offset) in entries.iter().zip(&offsets) {
            out.extend_from_slice(b"PK\x01\x02");
            u16le(&mut out, (3 << 8) | 20); // made by unix
            u16le(&mut out, 20);
            u16le(&mut out, e.flags);
            u16le(&mut out, e.method);
            u16le(&mut out, 0);
            u16le(&mut out, 0x21);
            u32le(&mut out, crc32(&e.data));
            u32le(&mut out, e.data.len() as u32);
            u32le(&mut out, e.size.unwrap_or(e.data.len() as u32));
            u16le(&mut out, e.name.len() as u16);
            u16le(&mut out, 0); // extra
            u16le(&mut out, 0); // comment
            u16le(&mut out, 0); // disk
            u16le(&mut out, 0); // internal attributes
            u32le(&mut out, e.external);
            u32le(&mut out, *offset);
            out.extend_from_slice(&e.name);
        }
        let cd_size = out.len() as u32 - cd_start;
        out.extend_from_slice(b"PK\x05\x06");
        u16le(&mut out, 0);
        u16le(&mut out, 0);
        u16le(&mut out, entries.len() as u16);
        u16le(&mut out, entries.len() as u16);
        u32le(&mut out, cd_size);
        u32le(&mut out, cd_start);
        u16le(&mut out, 0);
        out
    }

    fn inspect_bytes(bytes: &[u8]) -> Result<ArchiveManifest, ArchiveError> {
        inspect_bytes_with(bytes, &ArchiveLimits::default())
    }

    fn inspect_bytes_with(
        bytes: &[u8],
        limits: &ArchiveLimits,
    ) -> Result<ArchiveManifest, ArchiveError> {
        let zip = write_zip(bytes);
        inspect(&zip.path, limits)
    }

    fn extract_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Extracted, ArchiveError>) {
        let zip = write_zip(bytes);
        let dest = tempfile::tempdir().unwrap();
        let result = extract(&zip.path, dest.path(), &ArchiveLimits::default());
        (dest, result)
    }

    /// Asserts rejection with `code`, both by `inspect` and by `extract`
    /// (which must then have written nothing), and returns the message.
    #[track_caller]
    fn assert_rejected(bytes: &[u8], code: &str) -> String {
        let err = inspect_bytes(bytes).unwrap_err();
        assert_eq!(err.code(), code, "unexpected error: {err}");
        assert!(err.is_user_error());
        let (dest, result) = extract_bytes(bytes);
        assert_eq!(result.unwrap_err().code(), code);
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
        err.to_string()
    }

    fn single_raw(name: &[u8]) -> Vec<u8> {
        let mut entry = Raw::file("x", b"data");
        entry.name = name.to_vec();
        raw_zip(&[entry])
    }

    /// Every regular file under `dir`, as sorted relative paths.
    fn list_files(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    walk(base, &path, out);
                } else {
                    let rel = path.strip_prefix(base).unwrap();
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

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
        assert_rejected(&garbage, "archive_invalid");
    }

    #[test]
    fn empty_file_is_not_a_zip() {
        assert_rejected(b"", "archive_invalid");
    }

    #[test]
    fn truncated_zip_is_an_error_not_a_panic() {
        let bytes = build_zip(&[Item::Stored("index.html", b"hello")]);
        for cut in 0..bytes.len() {
            let _ = inspect_bytes(&bytes[..cut]);
        }
        assert_rejected(&bytes[..bytes.len() - 5], "archive_invalid");
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

    // ---------- extraction: lying sizes, corruption, destination ----------

    #[test]
    fn stored_entry_with_lying_size_is_rejected_before_extraction() {
        let mut entry = Raw::file("liar.html", &[b'x'; 5000]);
        entry.size = Some(10);
        assert_rejected(&raw_zip(&[entry]), "archive_size_mismatch");
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

    #[test]
    fn every_variant_has_a_distinct_code() {
        let name = || "n".to_owned();
        let all = [
            ArchiveError::NotAZip { reason: name() },
            ArchiveError::Corrupt {
                name: name(),
                reason: name(),
            },
            ArchiveError::TooManyEntries { count: 1, max: 0 },
            ArchiveError::FileTooLarge {
                name: name(),
                size: 1,
                max: 0,
            },
            ArchiveError::TooLarge {
                name: name(),
                total: 1,
                max: 0,
            },
            ArchiveError::SuspiciousRatio {
                name: name(),
                size: 1,
                compressed: 0,
                max_ratio: 1,
            },
            ArchiveError::InvalidName {
                name: name(),
                reason: "r",
            },
            ArchiveError::NameTooLong {
                name: name(),
                what: "name",
                max: 1,
            },
            ArchiveError::ControlCharacter { name: name() },
            ArchiveError::Backslash { name: name() },
            ArchiveError::AbsolutePath { name: name() },
            ArchiveError::DriveLetter { name: name() },
            ArchiveError::PathTraversal { name: name() },
            ArchiveError::DuplicateEntry { name: name() },
            ArchiveError::PathConflict { name: name() },
            ArchiveError::SymbolicLink { name: name() },
            ArchiveError::SpecialFile {
                name: name(),
                mode: 0,
            },
            ArchiveError::Encrypted { name: name() },
            ArchiveError::UnsupportedCompression {
                name: name(),
                method: name(),
            },
            ArchiveError::OverlappingEntries {
                name: name(),
                other: name(),
            },
            ArchiveError::SizeMismatch {
                name: name(),
                declared: 0,
                reason: name(),
            },
            ArchiveError::Empty,
            ArchiveError::DestinationNotEmpty {
                path: PathBuf::new(),
            },
            ArchiveError::Io {
                context: name(),
                source: io::Error::other("x"),
            },
        ];
        let codes: HashSet<&str> = all.iter().map(ArchiveError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|c| c.starts_with("archive_")));
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
