//! The dependency cache: `node_modules` and the package manager's own cache, kept between
//! builds of the same project on the worker's local disk.
//!
//! Why: installing dependencies is most of a typical front-end build. The second build of an
//! unchanged project should not download and unpack them again.
//!
//! # Contract
//! - Entries live at `<cache_dir>/<project>/<key>/`; project names are validated slugs, so a
//!   project can only ever reach its own folder. A build without a project has no cache.
//! - The key is the sha256 of the lockfile (or package.json without one), the package
//!   manager and the install command: any change to what would be installed is a miss.
//! - Restoring *moves* the entry into the build (a rename: instant on one filesystem, a copy
//!   across filesystems), so two concurrent builds of one project never share files: the
//!   second simply misses. Saving moves the build's folders back and keeps only the newest
//!   key of the project.
//! - The cache is local to each worker and best effort: any error is a miss, never a failed
//!   build.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::ProjectName;

/// The folders of a build that the cache keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDirs {
    /// The project's `node_modules`.
    pub node_modules: PathBuf,
    /// The package managers' cache folder (the sandbox's `/build/cache`).
    pub package_cache: PathBuf,
}

/// Per-project dependency caches under one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyCache {
    root: PathBuf,
}

const NODE_MODULES: &str = "node_modules";
const PACKAGE_CACHE: &str = "package-cache";

/// The cache key: sha256 of the lockfile's bytes, the package manager and the install command.
pub fn key(lockfile: &[u8], package_manager: &str, install_command: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(lockfile);
    hasher.update([0]);
    hasher.update(package_manager.as_bytes());
    hasher.update([0]);
    hasher.update(install_command.as_bytes());
    hex::encode(hasher.finalize())
}

/// The short form of a key written to the build log.
pub fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

impl DependencyCache {
    /// Caches kept under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn project_dir(&self, project: &ProjectName) -> PathBuf {
        self.root.join(project.as_str())
    }

    /// Move the entry `key` of `project` into `into`. `Ok(true)` on a hit; folders that
    /// already exist in the build are left alone.
    pub fn restore(
        &self,
        project: &ProjectName,
        key: &str,
        into: &CachedDirs,
    ) -> std::io::Result<bool> {
        let entry = self.project_dir(project).join(key);
        if !std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir()) {
            return Ok(false);
        }
        // Take the entry first, so a concurrent build of this project cannot take it too.
        let taken = self
            .project_dir(project)
            .join(format!(".restoring-{:016x}", rand::random::<u64>()));
        if std::fs::rename(&entry, &taken).is_err() {
            return Ok(false);
        }
        let mut restored = false;
        for (name, dest) in [
            (NODE_MODULES, &into.node_modules),
            (PACKAGE_CACHE, &into.package_cache),
        ] {
            let from = taken.join(name);
            if from.is_dir() {
                if dest.exists() {
                    if name == NODE_MODULES {
                        continue;
                    }
                    std::fs::remove_dir_all(dest)?;
                }
                move_dir(&from, dest)?;
                restored |= name == NODE_MODULES;
            }
        }
        let _ = std::fs::remove_dir_all(&taken);
        Ok(restored)
    }

    /// Move `from` into the cache as the entry `key` of `project`, replacing older entries.
    pub fn save(&self, project: &ProjectName, key: &str, from: &CachedDirs) -> std::io::Result<()> {
        let project_dir = self.project_dir(project);
        std::fs::create_dir_all(&project_dir)?;
        let staging = project_dir.join(format!(".saving-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&staging)?;
        let result = (|| {
            for (name, src) in [
                (NODE_MODULES, &from.node_modules),
                (PACKAGE_CACHE, &from.package_cache),
            ] {
                if std::fs::symlink_metadata(src).is_ok_and(|m| m.is_dir()) {
                    move_dir(src, &staging.join(name))?;
                }
            }
            for old in std::fs::read_dir(&project_dir)? {
                let old = old?.path();
                let stale = old.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    !n.starts_with('.') || n.starts_with(".restoring-") && is_stale(&old)
                });
                if stale {
                    std::fs::remove_dir_all(&old)?;
                }
            }
            std::fs::rename(&staging, project_dir.join(key))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }
}

/// Whether a leftover folder of an interrupted restore is old enough to remove.
fn is_stale(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 24 * 3600)
}

/// Move a folder: a rename, or a copy and delete when `to` is on another filesystem.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_tree(from, to)?;
            std::fs::remove_dir_all(from)
        }
        Err(err) => Err(err),
    }
}

/// Copy a folder, keeping symbolic links as links (`node_modules/.bin` is full of them).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> CachedDirs {
        CachedDirs {
            node_modules: root.join("node_modules"),
            package_cache: root.join("cache"),
        }
    }

    #[test]
    fn keys_change_with_the_lockfile_the_manager_and_the_command() {
        let base = key(b"lock", "npm", "npm ci");
        assert_eq!(base.len(), 64);
        assert_ne!(base, key(b"lock2", "npm", "npm ci"));
        assert_ne!(base, key(b"lock", "pnpm", "npm ci"));
        assert_ne!(base, key(b"lock", "npm", "npm install"));
        assert_eq!(short(&base).len(), 12);
    }

    #[test]
    fn a_saved_entry_is_restored_once_and_only_for_its_project_and_key() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = DependencyCache::new(cache_dir.path());
        let (a, b): (ProjectName, ProjectName) =
            ("alpha".parse().unwrap(), "beta".parse().unwrap());

        let build = tempfile::tempdir().unwrap();
        let d = dirs(build.path());
        std::fs::create_dir_all(d.node_modules.join(".bin")).unwrap();
        std::fs::write(d.node_modules.join("pkg.js"), "x").unwrap();
        std::os::unix::fs::symlink("../pkg.js", d.node_modules.join(".bin/pkg")).unwrap();
        std::fs::create_dir_all(d.package_cache.join("npm")).unwrap();
        cache.save(&a, "k1", &d).unwrap();
        assert!(!d.node_modules.exists(), "save moves, it does not copy");

        let other = tempfile::tempdir().unwrap();
        assert!(!cache.restore(&b, "k1", &dirs(other.path())).unwrap());
        assert!(!cache.restore(&a, "k2", &dirs(other.path())).unwrap());
        assert!(cache.restore(&a, "k1", &dirs(other.path())).unwrap());
        let restored = dirs(other.path());
        assert_eq!(
            std::fs::read_to_string(restored.node_modules.join("pkg.js")).unwrap(),
            "x"
        );
        assert!(restored.node_modules.join(".bin/pkg").is_symlink());
        assert!(restored.package_cache.join("npm").is_dir());
        assert!(
            !cache.restore(&a, "k1", &dirs(build.path())).unwrap(),
            "an entry is taken once"
        );

        // Saving a newer key replaces the older one.
        cache.save(&a, "k1", &restored).unwrap();
        std::fs::create_dir_all(d.node_modules.clone()).unwrap();
        cache.save(&a, "k2", &d).unwrap();
        let entries: Vec<_> = std::fs::read_dir(cache_dir.path().join("alpha"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["k2"]);
    }

    #[test]
    fn copying_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/sub")).unwrap();
        std::fs::write(dir.path().join("a/sub/f"), "f").unwrap();
        std::os::unix::fs::symlink("sub/f", dir.path().join("a/l")).unwrap();
        copy_tree(&dir.path().join("a"), &dir.path().join("b")).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("b/l")).unwrap(),
            Path::new("sub/f")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b/sub/f")).unwrap(),
            "f"
        );
    }
}
