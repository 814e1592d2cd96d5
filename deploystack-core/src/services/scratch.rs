//! Scratch space: where upload spools and build folders live while they are needed.
//!
//! ## Why under the data directory, and why swept at start?
//! A temporary file is removed when its owner drops it — but a process killed with SIGKILL
//! (or by the out-of-memory killer, or a power cut) drops nothing, and its spools and build
//! folders stay in the system temp directory, where nobody looks for them: seven crashes
//! left 163 MB there. So a process built by [`Services::from_config`](super::Services) keeps
//! its scratch files in a folder of its own, `<data_dir>/tmp/<pid>/`, and at start removes
//! every such folder whose process is gone. Processes sharing a data directory (a server and
//! a worker on one machine) never remove each other's. Being on the data directory's
//! filesystem also lets a build's dependency cache be restored with a rename.

use std::path::{Path, PathBuf};

/// Where this process keeps its temporary files; see the module doc. Removes its own folder
/// when dropped (on a clean exit).
#[derive(Debug)]
pub struct Scratch {
    /// The folder new temporary files go into.
    dir: PathBuf,
    /// Whether `dir` is this process's own (and so removed on drop), rather than the system's.
    owned: bool,
}

/// What [`Scratch::in_data_dir`] removed of earlier processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Folders of processes that are gone.
    pub folders: usize,
    /// Bytes of files in them.
    pub bytes: u64,
}

impl Scratch {
    /// The system temp directory, as `tempfile` uses by default: what embedders that build
    /// `Services` themselves get. Nothing is swept.
    pub fn system() -> Self {
        Self {
            dir: std::env::temp_dir(),
            owned: false,
        }
    }

    /// This process's folder under `<data_dir>/tmp/`, after removing the folders of
    /// processes that no longer run.
    pub fn in_data_dir(data_dir: &Path) -> std::io::Result<(Self, Swept)> {
        let base = data_dir.join("tmp");
        std::fs::create_dir_all(&base)?;
        let own = std::process::id();
        let mut swept = Swept::default();
        for entry in std::fs::read_dir(&base)? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A folder named for our own pid was left by an earlier process that had it.
            if pid == own || !running(pid) {
                swept.bytes += size_of_tree(&entry.path());
                std::fs::remove_dir_all(entry.path())?;
                swept.folders += 1;
            }
        }
        let dir = base.join(own.to_string());
        std::fs::create_dir_all(&dir)?;
        Ok((Self { dir, owned: true }, swept))
    }

    /// The folder new temporary files go into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new temporary file (an upload's spool), removed when dropped.
    pub fn file(&self, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&self.dir)
    }

    /// A new temporary folder (a build's sources and output), removed when dropped.
    pub fn folder(&self, prefix: &str) -> std::io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether process `pid` exists. Where `/proc` does not (not Linux), every process is
/// assumed to run, so nothing of another's is ever removed.
fn running(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Bytes of the files under `path`, for the log line; links are not followed.
fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| size_of_tree(&entry.path()))
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_gone_processes_are_swept_and_live_ones_kept() {
        let data = tempfile::tempdir().unwrap();
        let base = data.path().join("tmp");
        // A pid above the kernel's maximum (2^22) never runs; pid 1 always does.
        let gone = base.join("4999999");
        std::fs::create_dir_all(gone.join("build-x/node_modules")).unwrap();
        std::fs::write(gone.join("upload-1"), vec![0u8; 1000]).unwrap();
        std::fs::write(gone.join("build-x/node_modules/a.js"), vec![0u8; 24]).unwrap();
        let live = base.join("1");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::create_dir_all(base.join("not-a-pid")).unwrap();

        let (scratch, swept) = Scratch::in_data_dir(data.path()).unwrap();
        assert_eq!(
            swept,
            Swept {
                folders: 1,
                bytes: 1024
            }
        );
        assert!(!gone.exists());
        assert!(live.exists());
        assert!(base.join("not-a-pid").exists());
        assert_eq!(scratch.dir(), base.join(std::process::id().to_string()));

        let spool = scratch.file("upload-").unwrap();
        assert!(spool.path().starts_with(scratch.dir()));
        let folder = scratch.folder("build-").unwrap();
        assert!(folder.path().starts_with(scratch.dir()));
        drop((spool, folder));
        let own = scratch.dir().to_owned();
        drop(scratch);
        assert!(!own.exists(), "a clean exit removes its own folder");
    }
}
