//! Archive inspection and extraction (placeholder, being written).
#![allow(missing_docs, unused_variables)]

use std::path::Path;

#[derive(Debug, Clone)]
pub struct ArchiveLimits {
    pub max_entries: usize,
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
    pub max_ratio: u64,
}
impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_entries: 20_000,
            max_total_bytes: 1 << 30,
            max_file_bytes: 256 << 20,
            max_ratio: 200,
        }
    }
}
#[derive(Debug, Clone)]
pub struct ArchiveManifest {
    pub files: Vec<ArchiveFile>,
    pub total_bytes: u64,
    pub root_folder: Option<String>,
}
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    pub index: usize,
    pub path: String,
    pub declared_size: u64,
}
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
}
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("not a zip")]
    NotAZip,
    #[error("io {0}")]
    Io(#[from] std::io::Error),
}
impl ArchiveError {
    pub fn code(&self) -> &'static str {
        "archive_invalid"
    }
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Io(_))
    }
}
pub fn inspect(archive: &Path, limits: &ArchiveLimits) -> Result<ArchiveManifest, ArchiveError> {
    todo!()
}
pub fn extract(
    archive: &Path,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<Extracted, ArchiveError> {
    todo!()
}
