//! The free space a store keeps in reserve: a write that would leave less than the
//! reserve free on the data dir's disk is refused before sled sees it.
//!
//! Why: sled 0.34 does not survive running out of space mid-write. Measured here, with
//! a data dir on a small tmpfs that filled during an ingest: a store whose log write
//! failed blocked for good when it was dropped (its trees flush on drop and wait for a
//! write that never comes), and a value large enough to go to a blob file of its own (an
//! outbox segment) could be lost or kept apart from the rest of its batch, so mails
//! were lost or doubled after space was freed. Databases keep a reserve for this (a
//! quota, the blocks ext4 keeps for root); so does Spark: the disk is never filled by
//! Spark's own writes, and a full disk is a clean error that names it. (A write that
//! fails all the same, the disk filled by another program, is met by `failure`.)
//!
//! The reserve is `SPARK_DISK_RESERVE` bytes (a number, with an optional `KiB`, `MiB`
//! or `GiB`), 64 MiB unless set; `0` turns the check off.

use std::path::{Path, PathBuf};

use crate::Error;

/// The environment variable that sets the reserve.
pub(crate) const RESERVE_VARIABLE: &str = "SPARK_DISK_RESERVE";

/// The reserve unless [`RESERVE_VARIABLE`] says otherwise: room for sled to finish
/// what it has begun (its log segments, a snapshot) many times over.
const DEFAULT_RESERVE: u64 = 64 << 20;

/// How much a write may take on disk for each byte of it: sled writes a value to its
/// log, and again when it rewrites the log's segments.
const WRITE_AMPLIFICATION: u64 = 3;

/// The free space kept on the disk of a data dir.
#[derive(Debug, Clone)]
pub(super) struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    /// The reserve for the store in `path`, as the environment sets it.
    pub(super) fn from_env(path: &Path) -> Result<Self, Error> {
        let value = std::env::var(RESERVE_VARIABLE).ok();
        let bytes = match value.as_deref() {
            None => DEFAULT_RESERVE,
            Some(text) => parse_size(text).map_err(|why| Error::InvalidSetting {
                name: RESERVE_VARIABLE,
                value: text.to_owned(),
                why,
            })?,
        };
        Ok(Self {
            path: path.to_owned(),
            bytes,
        })
    }

    /// A reserve that checks nothing (for stores in temporary directories).
    #[cfg(test)]
    pub(super) fn none(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            bytes: 0,
        }
    }

    /// A reserve of `bytes` on the disk of `path`, for tests.
    #[cfg(test)]
    pub(super) fn of(path: &Path, bytes: u64) -> Self {
        Reserve {
            path: path.to_owned(),
            bytes,
        }
    }

    /// Refuses a write of about `writing` bytes that would leave less than the reserve
    /// free.
    pub(super) fn check(&self, writing: u64) -> Result<(), Error> {
        if self.bytes == 0 {
            return Ok(());
        }
        let Some(free) = free_bytes(&self.path) else {
            // A system that cannot tell is not refused for it.
            return Ok(());
        };
        let needed = self
            .bytes
            .saturating_add(writing.saturating_mul(WRITE_AMPLIFICATION));
        if free < needed {
            return Err(Error::DiskFull {
                path: self.path.clone(),
                free_bytes: free,
                needed_bytes: needed,
            });
        }
        Ok(())
    }
}

/// A size in bytes: a number, optionally followed by `KiB`, `MiB` or `GiB`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a number of bytes, e.g. 67108864 or 64MiB".to_owned())?;
    let shift = match unit.trim() {
        "" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => return Err(format!("unknown unit `{other}`; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| "it is too large".to_owned())
}

/// The bytes an unprivileged process may still write on the disk of `path`.
#[cfg(target_os = "linux")]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stats` is
    // a plain C struct that statvfs fills in (zeroed is a valid value of it).
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    // The fields' types differ between targets (u32 on some); u64 holds them all.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    (status == 0).then(|| blocks.saturating_mul(block_size))
}

#[cfg(not(target_os = "linux"))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert!(parse_size("64MB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").unwrap_err().contains("a number"));
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn a_write_that_would_eat_into_the_reserve_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).expect("statvfs works here");
        let tight = Reserve {
            path: dir.path().to_owned(),
            bytes: free + 1,
        };
        assert!(matches!(
            tight.check(0),
            Err(Error::DiskFull { free_bytes, needed_bytes, .. })
                if needed_bytes > free_bytes
        ));
        let roomy = Reserve {
            path: dir.path().to_owned(),
            bytes: 1,
        };
        assert!(roomy.check(0).is_ok());
        assert!(roomy.check(free).is_err(), "a write larger than the disk");
        assert!(Reserve::none(dir.path()).check(u64::MAX).is_ok());
    }
}
