//! Safe inspection and extraction of user-uploaded zip archives.
//!
//! # Threat model
//! Every upload is hostile until proven otherwise. A zip archive can carry
//! names such as `../../etc/cron.d/x` or `/root/.ssh/authorized_keys`,
//! symbolic links that point anywhere on the host, several entries with the
//! same name, entries that decompress to gigabytes (zip bombs, including the
//! "overlapping entries" kind), and headers that lie about their sizes.
//!
//! # Why not `ZipArchive::extract`?
//! The `zip` crate's own `ZipArchive::extract` is not a fit for this: it
//! recreates symbolic links verbatim, does not cap sizes, and its name index
//! silently keeps only one of several entries with the same name. So this
//! module walks the central directory itself.
//!
//! # API
//! 1. [`inspect`] validates every central directory record (names, types,
//!    sizes, compression ratio, encryption, overlaps, duplicates) without
//!    decompressing anything, and returns an [`ArchiveManifest`]
//!    (`inspection.rs`). [`ArchiveLimits`] holds the limits it checks.
//! 2. [`extract`] runs [`inspect`] first, then writes only regular files and
//!    directories under the destination, built from validated path components,
//!    never overwriting anything and never trusting declared sizes, and
//!    returns what it wrote as [`Extracted`] (`extraction.rs`).
//! 3. Both fail with an [`ArchiveError`] whose `code()` is stable and whose
//!    message says what is wrong with the upload (`error.rs`).
//!
//! Both functions are blocking; async callers should use `spawn_blocking`.

mod error;
mod extraction;
mod inspection;
#[cfg(test)]
mod test_zips;

pub use error::ArchiveError;
pub use extraction::{Extracted, extract};
pub use inspection::{ArchiveFile, ArchiveLimits, ArchiveManifest, check_paths, inspect};
