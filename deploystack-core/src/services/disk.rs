//! Free space in the data directory, where uploads are spooled, builds run and (with local
//! storage) blobs are kept.
//!
//! ## Why refuse up front?
//! A disk that fills up half-way through an upload or a build fails with `ENOSPC` deep inside
//! some write, which used to surface as "try again shortly" (503) or an internal error —
//! advice that cannot help, since retrying fills the disk again. Checking the free space
//! against a floor (`min_free_disk_bytes`) before accepting an upload turns that into one
//! clear answer, 507 Insufficient Storage, with the figures in the message; `/readyz` reports
//! the same condition so an operator (or a load balancer) sees it before users do.

use std::path::Path;

/// The data directory has less free space than the configured floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's disk is nearly full: {free} bytes free in the data directory, {floor} required \
     (min_free_disk_bytes); free some space, e.g. by deleting old deployments"
)]
pub struct LowDisk {
    /// Bytes free for unprivileged writers.
    pub free: u64,
    /// The configured floor.
    pub floor: u64,
}

/// Bytes free for unprivileged writers on the filesystem that holds `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// `Err` when the filesystem of `data_dir` has less than `floor` bytes free. A floor of 0
/// turns the check off; a directory that cannot be asked (it does not exist yet) passes, as
/// the write that needs it will say what is wrong more precisely.
pub fn check_floor(data_dir: &Path, floor: u64) -> Result<(), LowDisk> {
    if floor == 0 {
        return Ok(());
    }
    match free_bytes(data_dir) {
        Ok(free) if free < floor => Err(LowDisk { free, floor }),
        _ => Ok(()),
    }
}

/// Whether `err` (or an error it wraps) is "no space left on device" or "disk quota
/// exceeded": a condition retrying does not fix.
pub fn is_out_of_space(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error()))
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_checked_against_the_real_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert_eq!(check_floor(dir.path(), 0), Ok(()));
        assert_eq!(check_floor(dir.path(), 1), Ok(()));
        let low = check_floor(dir.path(), u64::MAX).unwrap_err();
        assert_eq!(low.floor, u64::MAX);
        assert!(low.to_string().contains("min_free_disk_bytes"), "{low}");
    }

    #[test]
    fn out_of_space_is_recognised_through_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("storing a blob failed")]
        struct Wrapper(#[source] std::io::Error);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(is_out_of_space(&Wrapper(full)));
        let quota = std::io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        assert!(is_out_of_space(&quota));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!is_out_of_space(&Wrapper(other)));
    }
}
