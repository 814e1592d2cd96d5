//! Why an archive was refused, or why we failed to handle it, and the translation of the
//! zip reader's errors into those reasons.

use std::io;
use std::path::PathBuf;

use zip::result::ZipError;

/// Entry names are cut to this many characters inside error messages.
const MAX_DISPLAYED_NAME_CHARS: usize = 256;

/// Why an archive was refused, or why we failed to handle it.
///
/// Entry names in messages are escaped with `{:?}` so that control
/// characters cannot inject anything into logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not a zip file: empty, something else (a tarball, an HTML page…), or a zip whose
    /// central directory cannot be read (truncated, damaged).
    #[error("{reason}")]
    NotAZip {
        /// Which of those it is, in plain words, and what to send instead.
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
    /// The destination given to [`extract`](super::extract) is not an empty directory.
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

    pub(super) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Entry name for messages: lossy UTF-8, cut to a readable length. Messages
/// print it with `{:?}`, which escapes control characters.
pub(super) fn display_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.chars().count() <= MAX_DISPLAYED_NAME_CHARS {
        return text.into_owned();
    }
    let mut cut: String = text.chars().take(MAX_DISPLAYED_NAME_CHARS).collect();
    cut.push('…');
    cut
}

/// How many bytes of an upload [`open_zip_error`] looks at to say what the upload is.
pub(super) const HEAD_BYTES: u64 = 512;

/// The error for an upload the zip reader could not open, from `head`, its first
/// [`HEAD_BYTES`] bytes. The zip reader only says "no end of central directory", which
/// means nothing to someone who sent an empty file or a tarball; this says which it is.
pub(super) fn open_zip_error(error: ZipError, head: &[u8]) -> ArchiveError {
    match error {
        ZipError::Io(e) if !is_data_error(&e) => ArchiveError::io("reading the archive", e),
        other => ArchiveError::NotAZip {
            reason: not_a_zip(head, &other),
        },
    }
}

fn not_a_zip(head: &[u8], error: &ZipError) -> String {
    const SEND: &str =
        "send a zip archive of your site (for example `zip -r site.zip .` in its folder)";
    if head.is_empty() {
        return format!("the upload is empty (0 bytes): {SEND}");
    }
    // Every zip produced by a real tool starts with a local file header ("PK\x03\x04") or,
    // when empty, the end record ("PK\x05\x06").
    if head.starts_with(b"PK") {
        return format!(
            "the upload starts like a zip archive, but its table of contents cannot be read: it \
             is probably truncated or damaged, create it again and upload it again ({error})"
        );
    }
    let looks_like = if head.starts_with(&[0x1f, 0x8b]) {
        Some("a gzip file (.gz, .tar.gz)")
    } else if head.get(257..262) == Some(b"ustar") {
        Some("a tar archive")
    } else if head.starts_with(b"Rar!") {
        Some("a RAR archive")
    } else if head.starts_with(&[b'7', b'z', 0xbc, 0xaf]) {
        Some("a 7z archive")
    } else {
        None
    };
    match looks_like {
        Some(kind) => format!("the upload is not a zip archive, it looks like {kind}: {SEND}"),
        None => format!("the upload is not a zip archive: {SEND}"),
    }
}

pub(super) fn entry_zip_error(name: &str, error: ZipError) -> ArchiveError {
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
pub(super) fn read_error(name: &str, declared: u64, error: io::Error) -> ArchiveError {
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

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
}
