//! One server per data dir: `spark serve` holds `DATA_DIR/serve.lock` while it runs,
//! with its URL inside, so that a second server is refused and a CLI command that
//! would open a tenant the server holds is told where the server is instead.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

const LOCK_FILE: &str = "serve.lock";

/// The lock a running server holds; released when dropped (or when the process dies).
pub struct ServeLock {
    file: File,
    path: PathBuf,
}

impl ServeLock {
    /// Takes the data dir's server lock, or says which server has it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open `{}`", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { file, path }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "another `spark serve` serves the data dir `{}`{}",
                data_dir.display(),
                url_in(&path).map_or(String::new(), |url| format!(" at {url}"))
            ),
            Err(TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("cannot lock `{}`", path.display()))
            }
        }
    }

    /// Writes the server's URL into the lock file, for the CLI to name.
    pub fn announce(&mut self, url: &str) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{url}")
            .with_context(|| format!("cannot write `{}`", self.path.display()))
    }
}

/// The URL of the server that holds `data_dir`, if one does.
pub fn server_of(data_dir: &Path) -> Option<String> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::options().read(true).write(true).open(&path).ok()?;
    match file.try_lock() {
        // Nobody holds it (the lock goes with this handle, now).
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(url_in(&path).unwrap_or_else(|| "?".to_owned())),
        Err(TryLockError::Error(_)) => None,
    }
}

fn url_in(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let url = text.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_per_data_dir_and_the_cli_learns_where() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(server_of(dir.path()), None);
        let mut lock = ServeLock::acquire(dir.path()).unwrap();
        lock.announce("http://127.0.0.1:1234").unwrap();
        assert_eq!(
            server_of(dir.path()).as_deref(),
            Some("http://127.0.0.1:1234")
        );
        let second = ServeLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(second.contains("http://127.0.0.1:1234"), "{second}");
        drop(lock);
        assert_eq!(server_of(dir.path()), None);
        assert!(ServeLock::acquire(dir.path()).is_ok());
    }
}
