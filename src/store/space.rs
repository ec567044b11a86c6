//! The disk watermark: writes are refused (507 Insufficient Storage) while the data directory's
//! filesystem has less than `[store] min_free_mb` free, before anything is written.
//!
//! The embedded engine memory-maps its files and flushes segment state from background tasks;
//! running its filesystem out of space mid-write fails in ways nothing above it can recover
//! from (a flush that panics, a page fault on a mapped file that kills the process with
//! SIGBUS). Refusing at a watermark keeps the last few MiB for what must still work: reads,
//! deletions (an erasure is never refused for lack of space), the store's own flushes and
//! compactions. Writes succeed again as soon as space is freed: the free space is read on
//! every write (one `statvfs`, no cache).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The watermark of one data directory.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
}

/// Bytes free to unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` points to writable memory of the
    // right type; statvfs fills it when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so `stat` is initialised.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl DiskGuard {
    /// A guard keeping `min_free` bytes free under `dir`.
    pub fn new(dir: &Path, min_free: u64) -> Self {
        Self { dir: dir.to_path_buf(), min_free }
    }

    /// `Err(InsufficientStorage)` when a write now would go below the watermark. A directory
    /// that cannot be measured (gone, not yet created) does not block writes: the write itself
    /// will say what is wrong.
    pub fn check(&self) -> Result<()> {
        if self.min_free == 0 {
            return Ok(());
        }
        match free_bytes(&self.dir) {
            Some(free) if free < self.min_free => Err(Error::InsufficientStorage(format!(
                "the data directory has {} MiB free, under [store] min_free_mb = {}; writes resume once space is freed",
                free >> 20,
                self.min_free >> 20
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether an error is the filesystem running out of space (ENOSPC or EDQUOT), however the
/// engine reported it.
pub fn is_out_of_space(message: &str) -> bool {
    message.contains("No space left on device") || message.contains("os error 28") || message.contains("quota exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_refuses_below_it_and_allows_above() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(DiskGuard::new(dir.path(), 1).check().is_ok());
        assert!(DiskGuard::new(dir.path(), 0).check().is_ok());
        let err = DiskGuard::new(dir.path(), free.saturating_mul(4).max(1 << 40)).check().unwrap_err();
        assert!(matches!(err, Error::InsufficientStorage(_)), "{err}");
        assert!(DiskGuard::new(&dir.path().join("missing"), u64::MAX).check().is_ok());
        assert!(is_out_of_space("flush failed: No space left on device (os error 28)"));
        assert!(!is_out_of_space("permission denied"));
    }
}
