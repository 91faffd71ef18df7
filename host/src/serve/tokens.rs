//! Access tokens: made by `spark tokens add`, checked by `spark serve`.
//!
//! A token reads `spark_<id>_<secret>`: `id` is 8 random bytes and `secret` 32, both in
//! lowercase hex. The id names the token's record, so that checking a token is one
//! lookup, not a scan of every record; the secret makes it unguessable.
//!
//! Each token is one file, `DATA_DIR/tokens/<id>.json` (mode 0600 in a directory of
//! mode 0700 on unix): its id, name, tenant (null for an operator token), scopes,
//! creation time and the SHA-256 of the whole token. The token itself is never stored,
//! so a copy of the data dir (a backup, a support bundle) gives no access. A fast hash
//! is enough: the secret is 256 random bits, not a password, so there is nothing to
//! guess by trying hashes.
//!
//! One file per token, written under a temporary name, synced and renamed into place:
//! two `tokens add` at once never overwrite each other (there is no shared file to
//! read, change and write back), a crash leaves no half-written record, and a record
//! never changes once in place. That last point is what lets [`Tokens::verify`] keep
//! the records in memory and look again only at the directory's listing when it
//! changes. To change a token, revoke it and add another.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Random bytes in a token's id (16 hex characters).
const ID_BYTES: usize = 8;
/// Random bytes in a token's secret (64 hex characters).
const SECRET_BYTES: usize = 32;
/// The longest token name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// What a tenant's token may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send records.
    Ingest,
    /// Read events, the outbox, dead letters and the like.
    Read,
    /// Manage the tenant; implies `read` and `ingest`.
    Admin,
}

impl Scope {
    /// Every scope: what an operator token holds.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    /// Whether holding `self` allows what `wanted` allows: `admin` allows everything,
    /// `read` and `ingest` only themselves.
    fn grants(self, wanted: Scope) -> bool {
        self == wanted || self == Scope::Admin
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub token_id: String,
    /// The one tenant the token acts on; `None`: an operator token.
    pub tenant: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Access {
    /// Whether this token may do what `scope` allows on `tenant`. An operator token may
    /// do everything on every tenant (and manage tenants). A tenant's token acts on its
    /// own tenant only, never another, and there: `admin` allows what `read` and
    /// `ingest` allow too; `read` and `ingest` allow only themselves (a token that feeds
    /// records cannot read them back, one that reads cannot write).
    pub fn allows(&self, tenant: &str, scope: Scope) -> bool {
        match &self.tenant {
            None => true,
            Some(own) => own == tenant && self.scopes.iter().any(|held| held.grants(scope)),
        }
    }

    /// Whether this is an operator token: every tenant, every scope.
    pub fn is_operator(&self) -> bool {
        self.tenant.is_none()
    }
}

/// What is kept about a token: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: Option<String>,
    /// `None`: an operator token.
    pub tenant: Option<String>,
    /// Sorted, without repeats; an operator token holds [`Scope::ALL`].
    pub scopes: Vec<Scope>,
    /// The SHA-256 of the whole token, in lowercase hex.
    pub sha256: String,
    /// When it was made, RFC 3339 in UTC.
    pub created_at: String,
}

impl TokenRecord {
    fn access(&self) -> Access {
        Access {
            token_id: self.id.clone(),
            tenant: self.tenant.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The tokens of a data dir.
pub struct Tokens {
    dir: PathBuf,
    cache: Mutex<Cache>,
}

/// The records as [`Tokens::verify`] last read them.
#[derive(Default)]
struct Cache {
    /// The directory's modification time, taken just before its listing was read;
    /// `None`: not read yet, or there was no directory.
    mtime: Option<SystemTime>,
    /// Whether to read the listing again even if the modification time is the same:
    /// a change may have come after the listing was read yet within the same tick of
    /// the file system's clock, or a record could not be read.
    recheck: bool,
    /// By id; `None` for a record that does not parse (skipped, warned about once:
    /// records never change, so it never will).
    records: HashMap<String, Option<TokenRecord>>,
}

/// How long after the directory's modification time a listing read may still miss a
/// change with the same modification time. File systems keep times in ticks: a few
/// milliseconds on ext4, xfs or btrfs, a second on some others, two on FAT. Within that
/// window the listing is read again on every check (one `readdir`, records already
/// known are not read again) until a read comes after it, which is then final.
const SAME_TICK: Duration = Duration::from_secs(2);

impl Tokens {
    /// The tokens of the data dir `data_dir` (in `data_dir/tokens/`, which need not
    /// exist yet).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("tokens"),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Makes a token for `tenant` with `scopes` (at least one), or an operator token
    /// (`tenant` `None`, no scopes: it holds them all). Returns its record and the
    /// token, which is not kept anywhere: this is the one time it is shown.
    ///
    /// `tenant` need not exist yet: an operator hands out a tenant's token before the
    /// tenant's first module is added, and the token starts to work on the tenant once
    /// it does. It is only checked to be a valid tenant name.
    pub fn add(
        &self,
        tenant: Option<&str>,
        scopes: &[Scope],
        name: Option<&str>,
    ) -> anyhow::Result<(TokenRecord, String)> {
        let scopes = match tenant {
            Some(tenant) => {
                spark_host::validate_tenant_name(tenant)?;
                anyhow::ensure!(
                    !scopes.is_empty(),
                    "a token for tenant `{tenant}` needs at least one scope (ingest, read, admin)"
                );
                let mut scopes = scopes.to_vec();
                scopes.sort();
                scopes.dedup();
                scopes
            }
            None => {
                anyhow::ensure!(
                    scopes.is_empty(),
                    "an operator token holds every scope: give it none"
                );
                Scope::ALL.to_vec()
            }
        };
        if let Some(name) = name {
            check_name(name)?;
        }
        let id = hex(&random_bytes::<ID_BYTES>()?);
        let token = format!("spark_{id}_{}", hex(&random_bytes::<SECRET_BYTES>()?));
        let record = TokenRecord {
            id,
            name: name.map(str::to_owned),
            tenant: tenant.map(str::to_owned),
            scopes,
            sha256: sha256_hex(&token),
            created_at: spark_host::format_time(spark_host::wall_clock_ms()),
        };
        self.write(&record)?;
        Ok((record, token))
    }

    /// Every token's record, oldest first (by creation time, then id). Records that do
    /// not parse are skipped with a warning.
    pub fn list(&self) -> anyhow::Result<Vec<TokenRecord>> {
        let ids = match self.ids_on_disk() {
            Ok(ids) => ids,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot list `{}`", self.dir.display()));
            }
        };
        let mut records = Vec::new();
        for id in ids {
            match self.read_record(&id) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                // Revoked since the listing was read.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("cannot read `{}`", self.path(&id).display()));
                }
            }
        }
        // By time, not by text: RFC 3339 with and without fractions of a second does not
        // sort as text.
        records.sort_by_cached_key(|record| {
            let time = spark_host::parse_time(&record.created_at).unwrap_or(i64::MIN);
            (time, record.id.clone())
        });
        Ok(records)
    }

    /// Removes the token whose id or name is `id_or_name` and returns its record. An id
    /// wins over a name (names cannot look like ids); a name several tokens share is
    /// refused, naming their ids, so that one is revoked by its id.
    pub fn revoke(&self, id_or_name: &str) -> anyhow::Result<TokenRecord> {
        let records = self.list()?;
        let record = match records.iter().find(|record| record.id == id_or_name) {
            Some(record) => record,
            None => {
                let named: Vec<&TokenRecord> = records
                    .iter()
                    .filter(|record| record.name.as_deref() == Some(id_or_name))
                    .collect();
                match named.as_slice() {
                    [] => anyhow::bail!(
                        "no token has the id or name `{id_or_name}` (see `spark tokens list`)"
                    ),
                    [record] => *record,
                    several => {
                        let ids: Vec<&str> =
                            several.iter().map(|record| record.id.as_str()).collect();
                        anyhow::bail!(
                            "{} tokens are named `{id_or_name}` ({}): revoke one by its id",
                            ids.len(),
                            ids.join(", ")
                        )
                    }
                }
            }
        };
        let path = self.path(&record.id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!("token `{}` was revoked meanwhile", record.id)
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot remove `{}`", path.display()));
            }
        }
        sync_dir(&self.dir)?;
        Ok(record.clone())
    }

    /// Keeps `record`, made elsewhere (another node of a cluster), as if added here.
    pub fn put_record(&self, record: &TokenRecord) -> anyhow::Result<()> {
        anyhow::ensure!(
            is_hex(&record.id, ID_BYTES) && is_hex(&record.sha256, 32),
            "a token record from elsewhere is malformed: `{}`",
            record.id
        );
        self.write(record)
    }

    /// Removes the record of `id` if it is there (revoked elsewhere).
    pub fn remove_record(&self, id: &str) -> anyhow::Result<()> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove `{}`", path.display())),
        }
    }

    /// The access a presented token gives, or `None` (unknown, malformed, revoked).
    ///
    /// Called on every request, so the records are kept in memory. Each call costs one
    /// `stat` of the directory: adding or revoking a token renames a file in or
    /// removes one, which changes the directory's modification time, and the listing is
    /// read again only then (records are never changed in place, so one already read
    /// stays right). That catches `tokens add` and `revoke` of another process on its
    /// next request. Two changes within one tick of the file system's clock leave the
    /// same modification time, so a listing read in the tick of its modification time
    /// is not trusted: it is read again on each call until one is read `SAME_TICK`
    /// (2 s) after it, as git does with its index. Comparing the number of entries
    /// instead would miss an add and a revoke in the same tick, and a revoked token must
    /// stop working at once.
    pub fn verify(&self, token: &str) -> Option<Access> {
        let id = token_id(token)?;
        let hash = sha256_hex(token);
        // Taken before the listing is read, so that a change while it is read makes the
        // next call read it again.
        let mtime = fs::metadata(&self.dir)
            .and_then(|meta| meta.modified())
            .ok();
        // A panic while the cache was refreshed leaves it marked for a new reading
        // (`refresh` clears `mtime` first), so a poisoned lock is safe to take over.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut cache, mtime);
        let record = cache.records.get(id)?.as_ref()?;
        // Compared in constant time: how long a refusal takes says nothing of how much of
        // the hash was right.
        bool::from(hash.as_bytes().ct_eq(record.sha256.as_bytes())).then(|| record.access())
    }

    /// Brings `cache` up to the directory, whose modification time is `mtime` (`None`:
    /// there is no directory, or it cannot be read).
    fn refresh(&self, cache: &mut Cache, mtime: Option<SystemTime>) {
        let Some(mtime) = mtime else {
            *cache = Cache::default();
            return;
        };
        if cache.mtime == Some(mtime) && !cache.recheck {
            return;
        }
        let read_at = SystemTime::now();
        cache.mtime = None;
        let ids: HashSet<String> = match self.ids_on_disk() {
            Ok(ids) => ids.into_iter().collect(),
            Err(error) => {
                // Fail closed: a listing we cannot read revokes every token until we can.
                tracing::warn!("cannot list `{}`: {error}", self.dir.display());
                cache.records.clear();
                return;
            }
        };
        cache.records.retain(|id, _| ids.contains(id));
        let mut unread = false;
        for id in ids {
            if cache.records.contains_key(&id) {
                continue;
            }
            match self.read_record(&id) {
                Ok(record) => {
                    cache.records.insert(id, record);
                }
                Err(error) => {
                    // Perhaps passing (too many open files): not cached, read next time.
                    if error.kind() != io::ErrorKind::NotFound {
                        tracing::warn!("cannot read `{}`: {error}", self.path(&id).display());
                    }
                    unread = true;
                }
            }
        }
        let same_tick = read_at
            .duration_since(mtime)
            // A modification time in the future (a clock set back): not settled either.
            .map_or(true, |age| age < SAME_TICK);
        cache.mtime = Some(mtime);
        cache.recheck = unread || same_tick;
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The ids of the record files in the directory: `<id>.json`, with nothing else
    /// (temporary files of an add in progress, strays) counted.
    fn ids_on_disk(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().and_then(|name| name.strip_suffix(".json"))
                && is_hex(id, ID_BYTES)
            {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// The record of `id`, or `None` (with a warning) if its file does not parse or
    /// does not belong under its name.
    fn read_record(&self, id: &str) -> io::Result<Option<TokenRecord>> {
        let path = self.path(id);
        let text = fs::read_to_string(&path)?;
        let problem = match serde_json::from_str::<TokenRecord>(&text) {
            Ok(record) if record.id != id => format!("it holds the id `{}`", record.id),
            Ok(record) if !is_hex(&record.sha256, 32) => "its sha256 is not 64 hex digits".into(),
            Ok(record) => return Ok(Some(record)),
            Err(error) => error.to_string(),
        };
        tracing::warn!("skipping the token record `{}`: {problem}", path.display());
        Ok(None)
    }

    /// Writes a record atomically: to a temporary file, synced, renamed into place, and
    /// the directory synced, so that the token exists whole or not at all, even after a
    /// crash. (A rename replaces a file of the same id: with 64 random bits, ids meet
    /// once in about 2^32 tokens, which no data dir comes near.)
    fn write(&self, record: &TokenRecord) -> anyhow::Result<()> {
        self.create_dir()?;
        let path = self.path(&record.id);
        let temp = self.dir.join(format!(".{}.tmp", record.id));
        let mut text = serde_json::to_string_pretty(record)?;
        text.push('\n');
        if let Err(error) = write_synced(&temp, &text).and_then(|()| fs::rename(&temp, &path)) {
            let _ = fs::remove_file(&temp);
            return Err(error).with_context(|| format!("cannot write `{}`", path.display()));
        }
        sync_dir(&self.dir)
    }

    /// Makes the directory (mode 0700 on unix) and the data dir above it, if needed.
    fn create_dir(&self) -> anyhow::Result<()> {
        if let Some(data_dir) = self.dir.parent() {
            fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create `{}`", data_dir.display()))?;
        }
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
                Err(error).with_context(|| format!("cannot create `{}`", self.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Writes a new file (mode 0600 on unix) and syncs it.
fn write_synced(path: &Path, text: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Makes a rename or removal in `dir` durable (on unix; elsewhere the file system's
/// own ordering is all there is).
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync `{}`", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A token name: a label for people and for `revoke`, 1 to 64 characters with no
/// control characters, and not shaped like an id so that `revoke` never mistakes one
/// for the other.
fn check_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS,
        "a token name has 1 to {MAX_NAME_CHARS} characters"
    );
    anyhow::ensure!(
        !name.chars().any(char::is_control),
        "a token name has no control characters"
    );
    anyhow::ensure!(
        !is_hex(name, ID_BYTES),
        "`{name}` looks like a token id: pick a name that does not"
    );
    Ok(())
}

/// The id of a well-formed token (`spark_<16 hex>_<64 hex>`), or `None`.
fn token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.strip_prefix("spark_")?.split_once('_')?;
    (is_hex(id, ID_BYTES) && is_hex(secret, SECRET_BYTES)).then_some(id)
}

/// Whether `text` is `bytes` bytes in lowercase hex.
fn is_hex(text: &str, bytes: usize) -> bool {
    text.len() == 2 * bytes && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// `N` random bytes from the system, in lowercase hex: tokens' secrets, session ids,
/// idempotency keys.
pub fn random_hex<const N: usize>() -> anyhow::Result<String> {
    Ok(hex(&random_bytes::<N>()?))
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("cannot get random bytes from the system: {error}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::new(dir.path());
        (dir, tokens)
    }

    /// Sets the modification time of the tokens directory, as if the last change had
    /// happened then.
    fn set_dir_mtime(tokens: &Tokens, time: SystemTime) {
        fs::File::open(&tokens.dir)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    fn dir_mtime(tokens: &Tokens) -> SystemTime {
        fs::metadata(&tokens.dir).unwrap().modified().unwrap()
    }

    #[test]
    fn a_token_added_is_verified() {
        let (_dir, tokens) = tokens();
        let (record, token) = tokens
            .add(
                Some("acme"),
                &[Scope::Read, Scope::Ingest, Scope::Read],
                Some("ci"),
            )
            .unwrap();
        assert!(token_id(&token).is_some(), "{token}");
        assert!(token.starts_with(&format!("spark_{}_", record.id)));
        assert_eq!(record.scopes, [Scope::Ingest, Scope::Read]);
        assert_eq!(record.name.as_deref(), Some("ci"));
        let access = tokens.verify(&token).unwrap();
        assert_eq!(
            access,
            Access {
                token_id: record.id.clone(),
                tenant: Some("acme".into()),
                scopes: vec![Scope::Ingest, Scope::Read],
            }
        );
        assert!(!access.is_operator());

        let (record, token) = tokens.add(None, &[], None).unwrap();
        assert_eq!(record.scopes, Scope::ALL);
        let access = tokens.verify(&token).unwrap();
        assert!(access.is_operator());
        assert_eq!(tokens.list().unwrap().len(), 2);
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_token_is_refused() {
        let (_dir, tokens) = tokens();
        let (record, token) = tokens.add(Some("acme"), &[Scope::Admin], None).unwrap();
        let (_, other) = tokens.add(Some("acme"), &[Scope::Admin], None).unwrap();
        let other_secret = other.rsplit('_').next().unwrap();
        let mut tampered = vec![
            format!("spark_{}_{other_secret}", record.id),
            format!("spark_{}_{}", record.id, "0".repeat(64)),
            token.to_uppercase(),
            token.replacen("spark_", "spork_", 1),
            format!("{token}0"),
            format!(" {token}"),
            token[..token.len() - 1].to_owned(),
            String::new(),
            "spark_".into(),
        ];
        // Every single character changed.
        for at in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            tampered.push(String::from_utf8(bytes).unwrap());
        }
        for bad in &tampered {
            assert_eq!(tokens.verify(bad), None, "{bad}");
        }
        assert!(tokens.verify(&token).is_some());
    }

    #[test]
    fn a_revoked_token_stops_working_at_once() {
        let (_dir, tokens) = tokens();
        let (record, token) = tokens
            .add(Some("acme"), &[Scope::Read], Some("ci"))
            .unwrap();
        let (_, kept) = tokens.add(Some("acme"), &[Scope::Read], None).unwrap();
        assert!(tokens.verify(&token).is_some());
        assert_eq!(tokens.revoke("ci").unwrap(), record);
        assert_eq!(tokens.verify(&token), None);
        assert!(tokens.verify(&kept).is_some());
        assert!(tokens.revoke(&record.id).is_err(), "revoked twice");
    }

    #[test]
    fn another_instance_sees_adds_and_revokes() {
        let (dir, writer) = tokens();
        let reader = Tokens::new(dir.path());
        let (_, first) = writer.add(Some("acme"), &[Scope::Read], None).unwrap();
        assert!(reader.verify(&first).is_some());
        let (second_record, second) = writer.add(None, &[], None).unwrap();
        assert!(reader.verify(&second).is_some());
        writer.revoke(&second_record.id).unwrap();
        assert_eq!(reader.verify(&second), None);
        assert!(reader.verify(&first).is_some());
    }

    #[test]
    fn changes_in_the_same_tick_of_the_directory_clock_are_seen() {
        let (dir, writer) = tokens();
        let reader = Tokens::new(dir.path());
        let (record, token) = writer.add(Some("acme"), &[Scope::Read], None).unwrap();
        assert!(reader.verify(&token).is_some());
        // An add and a revoke later, with the same modification time and as many
        // entries as before: only the listing tells.
        let mtime = dir_mtime(&writer);
        let (_, new) = writer.add(Some("acme"), &[Scope::Read], None).unwrap();
        writer.revoke(&record.id).unwrap();
        set_dir_mtime(&writer, mtime);
        assert_eq!(reader.verify(&token), None);
        assert!(reader.verify(&new).is_some());
    }

    #[test]
    fn a_settled_listing_is_not_read_again() {
        let (dir, writer) = tokens();
        let reader = Tokens::new(dir.path());
        let (_, token) = writer.add(Some("acme"), &[Scope::Read], None).unwrap();
        let settled = SystemTime::now() - Duration::from_secs(60);
        set_dir_mtime(&writer, settled);
        assert!(reader.verify(&token).is_some());
        // A record slipped in behind the cache's back (the modification time put back)
        // is not seen: the cache answered, not the disk.
        let (_, unseen) = writer.add(Some("acme"), &[Scope::Read], None).unwrap();
        set_dir_mtime(&writer, settled);
        assert_eq!(reader.verify(&unseen), None);
        // Any change of the modification time reads the listing again.
        set_dir_mtime(&writer, settled + Duration::from_secs(1));
        assert!(reader.verify(&unseen).is_some());
    }

    #[test]
    fn the_token_is_never_stored() {
        let (dir, tokens) = tokens();
        let mut issued = Vec::new();
        for name in ["a", "b"] {
            issued.push(
                tokens
                    .add(Some("acme"), &[Scope::Admin], Some(name))
                    .unwrap()
                    .1,
            );
        }
        issued.push(tokens.add(None, &[], Some("root")).unwrap().1);
        tokens.revoke("a").unwrap();
        let mut files = 0;
        for entry in fs::read_dir(dir.path().join("tokens")).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            files += 1;
            for token in &issued {
                let secret = token.rsplit('_').next().unwrap();
                assert!(!text.contains(secret), "{text}");
            }
        }
        assert_eq!(files, 2, "one file per live token, no temporary files left");
    }

    #[cfg(unix)]
    #[test]
    fn records_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, tokens) = tokens();
        let (record, _) = tokens.add(Some("acme"), &[Scope::Read], None).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("tokens")), 0o700);
        assert_eq!(mode(&tokens.path(&record.id)), 0o600);
    }

    #[test]
    fn a_record_that_does_not_parse_is_skipped() {
        let (_dir, tokens) = tokens();
        let (_, token) = tokens.add(Some("acme"), &[Scope::Read], None).unwrap();
        fs::write(tokens.path(&"0".repeat(16)), "{not json").unwrap();
        fs::write(tokens.dir.join("notes.txt"), "stray").unwrap();
        assert_eq!(tokens.list().unwrap().len(), 1);
        assert!(tokens.verify(&token).is_some());
        assert_eq!(
            tokens.verify(&format!("spark_{}_{}", "0".repeat(16), "0".repeat(64))),
            None
        );
    }

    #[test]
    fn revoking_a_shared_name_is_refused() {
        let (_dir, tokens) = tokens();
        let (a, _) = tokens
            .add(Some("acme"), &[Scope::Read], Some("ci"))
            .unwrap();
        let (b, _) = tokens
            .add(Some("acme"), &[Scope::Read], Some("ci"))
            .unwrap();
        let error = tokens.revoke("ci").unwrap_err().to_string();
        assert!(error.contains(&a.id) && error.contains(&b.id), "{error}");
        assert!(tokens.revoke("nobody").is_err());
        assert_eq!(tokens.revoke(&a.id).unwrap(), a);
        assert_eq!(tokens.revoke("ci").unwrap(), b);
        assert!(tokens.list().unwrap().is_empty());
    }

    #[test]
    fn bad_requests_make_no_token() {
        let (_dir, tokens) = tokens();
        assert!(tokens.add(Some("Acme"), &[Scope::Read], None).is_err());
        assert!(tokens.add(Some("../x"), &[Scope::Read], None).is_err());
        assert!(tokens.add(Some("acme"), &[], None).is_err());
        assert!(tokens.add(None, &[Scope::Read], None).is_err());
        assert!(tokens.add(Some("acme"), &[Scope::Read], Some("")).is_err());
        assert!(
            tokens
                .add(Some("acme"), &[Scope::Read], Some("a\nb"))
                .is_err()
        );
        assert!(
            tokens
                .add(Some("acme"), &[Scope::Read], Some("0123456789abcdef"))
                .is_err()
        );
        assert!(tokens.list().unwrap().is_empty());
    }

    #[test]
    fn scopes_allow_on_their_own_tenant_only() {
        let access = |tenant: Option<&str>, scopes: &[Scope]| Access {
            token_id: "0".repeat(16),
            tenant: tenant.map(str::to_owned),
            scopes: scopes.to_vec(),
        };
        let ingest = access(Some("acme"), &[Scope::Ingest]);
        assert!(ingest.allows("acme", Scope::Ingest));
        assert!(!ingest.allows("acme", Scope::Read));
        assert!(!ingest.allows("acme", Scope::Admin));
        let read = access(Some("acme"), &[Scope::Read]);
        assert!(read.allows("acme", Scope::Read));
        assert!(!read.allows("acme", Scope::Ingest));
        assert!(!read.allows("acme", Scope::Admin));
        let admin = access(Some("acme"), &[Scope::Admin]);
        for scope in Scope::ALL {
            assert!(admin.allows("acme", scope));
            // Never another tenant, whatever the scopes.
            assert!(!admin.allows("other", scope));
            assert!(!admin.allows("acme2", scope));
        }
        let operator = access(None, &[]);
        assert!(operator.is_operator());
        for scope in Scope::ALL {
            assert!(operator.allows("acme", scope));
            assert!(operator.allows("other", scope));
        }
    }
}
