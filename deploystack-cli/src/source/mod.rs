//! What `deploy` sends: the files of a folder ([`folder`]: `.gitignore`, `.deployignore`,
//! never `node_modules`, `.git` or the link folder) or of a zip archive ([`archive`]), each
//! with its path in the deployment, size and mode, hashed in parallel ([`hash`]).
//!
//! Reading a file's bytes goes through an [`Opener`]: one per thread, so the threads that
//! hash or upload entries of a zip archive each keep their own open archive instead of
//! reading its central directory again for every entry.

pub mod archive;
pub mod folder;
pub mod hash;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::exit::CliError;

/// Names never sent, wherever they are in the tree: dependencies the build installs
/// itself, version control, and the folder's link to its project.
pub const NEVER_SENT: [&str; 3] = ["node_modules", ".git", crate::link::DIR];

/// `0o100644`: a regular file.
pub const MODE_FILE: u32 = 0o100_644;
/// `0o100755`: a regular file its owner may execute (build scripts).
pub const MODE_EXECUTABLE: u32 = 0o100_755;

/// One file to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path in the deployment: relative, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// [`MODE_FILE`] or [`MODE_EXECUTABLE`].
    pub mode: u32,
    /// Where its bytes are.
    pub origin: Origin,
}

/// Where a file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk.
    Disk(PathBuf),
    /// Entry `index` of the source's zip archive.
    Entry(usize),
}

/// The files of a folder or archive, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The files.
    pub files: Vec<SourceFile>,
    /// The zip archive the [`Origin::Entry`] files are in.
    pub archive: Option<PathBuf>,
    /// Paths left out that a person may have expected to be sent (symbolic links), to warn
    /// about.
    pub skipped: Vec<String>,
}

impl Source {
    /// The files of `path`: a folder, or a zip archive.
    pub fn read(path: &Path) -> Result<Source, CliError> {
        let metadata = std::fs::metadata(path).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                CliError::usage(format!("{} does not exist", path.display())).with_hint(
                    "give the folder (or .zip file) to deploy: `deploystack deploy ./site`",
                )
            } else {
                CliError::local(format!("reading {}", path.display()), err)
            }
        })?;
        if metadata.is_dir() {
            folder::read(path)
        } else if archive::is_zip(path) {
            archive::read(path)
        } else {
            Err(CliError::usage(format!(
                "{} is neither a folder nor a zip archive",
                path.display()
            ))
            .with_hint("give the folder (or .zip file) to deploy: `deploystack deploy ./site`"))
        }
    }

    /// An opener for this source's files, for one thread.
    pub fn opener(&self) -> Opener<'_> {
        Opener {
            source: self,
            archive: None,
        }
    }

    /// Total bytes of every file.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Reads the bytes of a source's files; keeps the zip archive open between reads.
pub struct Opener<'a> {
    source: &'a Source,
    archive: Option<zip::ZipArchive<File>>,
}

impl Opener<'_> {
    /// A reader of `file`'s bytes.
    pub fn open(&mut self, file: &SourceFile) -> io::Result<Box<dyn Read + '_>> {
        match &file.origin {
            Origin::Disk(path) => Ok(Box::new(File::open(path)?)),
            Origin::Entry(index) => {
                if self.archive.is_none() {
                    let path = self.source.archive.as_ref().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no archive to read from")
                    })?;
                    self.archive =
                        Some(zip::ZipArchive::new(File::open(path)?).map_err(io::Error::other)?);
                }
                let archive = self
                    .archive
                    .as_mut()
                    .ok_or_else(|| io::Error::other("the archive could not be opened"))?;
                let entry = archive.by_index(*index).map_err(io::Error::other)?;
                Ok(Box::new(entry))
            }
        }
    }
}

/// Whether a relative `/`-separated path passes through a name that is never sent.
pub fn never_sent(path: &str) -> bool {
    path.split('/').any(|part| NEVER_SENT.contains(&part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_version_control_and_the_link_are_never_sent_at_any_depth() {
        for path in [
            "node_modules/a/index.js",
            "app/node_modules/x.js",
            ".git/config",
            "sub/.git/HEAD",
            ".deploystack/project.json",
        ] {
            assert!(never_sent(path), "{path}");
        }
        for path in ["index.html", "node_modules.txt", "git/x", "a/.gitignore"] {
            assert!(!never_sent(path), "{path}");
        }
    }
}
