//! The retained-secret cache (RFC 6189 §4.9): our ZID and, per peer ZID,
//! rs1, rs2, when each expires, and the SAS-verified flag.
//!
//! A retained secret is kept for the cache expiration interval both sides
//! agreed when it was made (the smaller of the two Confirms' values,
//! §4.9/§5.7). Once that has passed it is as good as absent: not offered,
//! not matched, and its absence is no cache mismatch
//! ([`ZidCache::get_live`]). The cache reads no clock: whoever asks passes
//! the time.
//!
//! [`ZidCache`] is a plain in-memory value the sans-IO endpoint reads and
//! updates; [`ZidCache::load`] and [`ZidCache::save`] persist it in a
//! SQLite file (system `libsqlite3`, the same library bzrtp and `sqlx`
//! link, so a process holding all three has one SQLite). A save is one
//! transaction, so a crash leaves the old or the new cache. The file is
//! created with mode 0600.
//!
//! Each peer row carries an HMAC-SHA256 under a random key kept in the
//! `zrtp_self` row. A row whose MAC fails (disk damage, a stray edit) is
//! reported by [`ZidCache::is_corrupt`] and treated as a cache mismatch,
//! never as "no history" (saving keeps it flagged); it is an integrity
//! check, not protection against someone who can read the file.

use super::algo::HashAlgo;
use super::crypto::{ct_eq, mac, random};
use super::message::Zid;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Schema version kept in `PRAGMA user_version`. Version 1 had no
/// expiry columns; its files are read (every secret kept forever, each row
/// checked against the version 1 MAC) and written back as version 2.
const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS zrtp_self (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    zid     BLOB NOT NULL,
    mac_key BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS zrtp_peers (
    zid         BLOB PRIMARY KEY,
    rs1         BLOB,
    rs2         BLOB,
    verified    INTEGER NOT NULL,
    mac         BLOB NOT NULL,
    rs1_expires INTEGER,
    rs2_expires INTEGER
);";
/// Version 1 to 2: the expiry of each secret (Unix seconds, NULL = never).
const MIGRATE_FROM_1: &str = "
ALTER TABLE zrtp_peers ADD COLUMN rs1_expires INTEGER;
ALTER TABLE zrtp_peers ADD COLUMN rs2_expires INTEGER;";

/// Retained secrets shared with one peer.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CacheEntry {
    /// Newest retained secret.
    pub rs1: Option<[u8; 32]>,
    /// The one before.
    pub rs2: Option<[u8; 32]>,
    /// When rs1 expires (whole seconds since the Unix epoch); `None`: never.
    #[zeroize(skip)]
    pub rs1_expires: Option<SystemTime>,
    /// When rs2 expires, as `rs1_expires`.
    #[zeroize(skip)]
    pub rs2_expires: Option<SystemTime>,
    /// The user compared the SAS with this peer and confirmed it.
    pub verified: bool,
}

impl std::fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheEntry")
            .field("rs1", &self.rs1.is_some())
            .field("rs2", &self.rs2.is_some())
            .field("rs1_expires", &self.rs1_expires)
            .field("rs2_expires", &self.rs2_expires)
            .field("verified", &self.verified)
            .finish()
    }
}

impl CacheEntry {
    /// The entry as it stands at `now`: expired secrets removed; `None` if
    /// no secret is left.
    fn live(&self, now: SystemTime) -> Option<CacheEntry> {
        let alive = |expires: Option<SystemTime>| expires.is_none_or(|t| now < t);
        let (keep1, keep2) = (alive(self.rs1_expires), alive(self.rs2_expires));
        let e = CacheEntry {
            rs1: self.rs1.filter(|_| keep1),
            rs2: self.rs2.filter(|_| keep2),
            rs1_expires: self.rs1_expires.filter(|_| keep1),
            rs2_expires: self.rs2_expires.filter(|_| keep2),
            verified: self.verified,
        };
        (e.rs1.is_some() || e.rs2.is_some()).then_some(e)
    }
}

/// Cache file problems.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Creating the file failed.
    #[error("ZID cache I/O: {0}")]
    Io(std::io::Error),
    /// SQLite refused the file (not a database, locked, disk full, …).
    #[error("ZID cache database: {0}")]
    Sqlite(rusqlite::Error),
    /// The file is a SQLite database but not a ZID cache we can read: an
    /// unknown schema version or a damaged `zrtp_self` row (peer rows are
    /// checked one by one).
    #[error("ZID cache is corrupt: {0}")]
    Corrupt(&'static str),
}

shown_from!(CacheError, CacheError::Io, std::io::Error);
shown_from!(CacheError, CacheError::Sqlite, rusqlite::Error);

/// Our ZID and what we retained about each peer.
#[derive(Clone)]
pub struct ZidCache {
    self_zid: Zid,
    mac_key: [u8; 32],
    entries: HashMap<Zid, CacheEntry>,
    corrupt: HashSet<Zid>,
}

impl Drop for ZidCache {
    fn drop(&mut self) {
        self.mac_key.zeroize();
    }
}

impl std::fmt::Debug for ZidCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZidCache")
            .field("entries", &self.entries.len())
            .field("corrupt", &self.corrupt.len())
            .finish()
    }
}

impl Default for ZidCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ZidCache {
    /// A fresh in-memory cache with a random ZID.
    pub fn new() -> Self {
        ZidCache {
            self_zid: random(),
            mac_key: random(),
            entries: HashMap::new(),
            corrupt: HashSet::new(),
        }
    }

    /// Our ZID.
    pub fn self_zid(&self) -> Zid {
        self.self_zid
    }

    /// What we retained about `peer`, expired secrets included.
    pub fn get(&self, peer: &Zid) -> Option<&CacheEntry> {
        self.entries.get(peer)
    }

    /// What we retained about `peer` that is still good at `now`: a secret
    /// whose expiry has come is left out (§4.9: kept only for the interval
    /// agreed), and an entry with no secret left is `None`, as if the peer
    /// were unknown. That is no cache mismatch, and its verified flag does
    /// not count: it vouched for keys that nothing links to any more.
    pub fn get_live(&self, peer: &Zid, now: SystemTime) -> Option<CacheEntry> {
        self.entries.get(peer)?.live(now)
    }

    /// Whether the stored entry for `peer` failed its integrity check.
    pub fn is_corrupt(&self, peer: &Zid) -> bool {
        self.corrupt.contains(peer)
    }

    /// Number of peers remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks the SAS with `peer` as verified or not (§4.9 "SAS verified
    /// flag"); returns false if the peer is unknown.
    pub fn set_verified(&mut self, peer: &Zid, verified: bool) -> bool {
        match self.entries.get_mut(peer) {
            Some(e) => {
                e.verified = verified;
                true
            }
            None => false,
        }
    }

    /// Stores a new rs1 after a successful DH exchange at `now` (§4.6.1),
    /// to expire at `expires` (`None`: never; kept to whole seconds): the
    /// old rs1 becomes rs2 unless it has expired. A mismatch, or no secret
    /// left to carry the verified flag, clears it.
    pub(crate) fn update(
        &mut self,
        peer: Zid,
        new_rs1: [u8; 32],
        expires: Option<SystemTime>,
        keep_verified: bool,
        now: SystemTime,
    ) {
        let old = self.get_live(&peer, now).unwrap_or_default();
        let entry = CacheEntry {
            rs1: Some(new_rs1),
            rs1_expires: expires.map(|t| from_unix(unix_secs(t)).unwrap_or(t)),
            rs2: old.rs1,
            rs2_expires: old.rs1_expires,
            verified: old.verified && keep_verified,
        };
        self.entries.insert(peer, entry);
        self.corrupt.remove(&peer);
    }

    /// What is held about `peer` (entry and integrity flag), for
    /// [`ZidCache::restore`].
    pub(crate) fn snapshot(&self, peer: &Zid) -> (Option<CacheEntry>, bool) {
        (self.entries.get(peer).cloned(), self.corrupt.contains(peer))
    }

    /// Puts back what [`ZidCache::snapshot`] returned, undoing an update.
    pub(crate) fn restore(&mut self, peer: Zid, (entry, corrupt): (Option<CacheEntry>, bool)) {
        match entry {
            Some(e) => self.entries.insert(peer, e),
            None => self.entries.remove(&peer),
        };
        if corrupt {
            self.corrupt.insert(peer);
        } else {
            self.corrupt.remove(&peer);
        }
    }

    /// Forgets everything about `peer`.
    pub fn remove(&mut self, peer: &Zid) {
        self.entries.remove(peer);
        self.corrupt.remove(peer);
    }

    /// Applies to `self` what changed between `base` and `updated`, peer by
    /// peer: each peer whose entry (or integrity flag) differs is taken
    /// from `updated`, every other peer is left alone. Meant for several
    /// calls running off snapshots of one shared cache (all with one ZID),
    /// so that one call saving its cache does not undo another's update.
    /// Returns whether `self` changed; does nothing if the ZIDs differ.
    pub fn merge_changes(&mut self, base: &ZidCache, updated: &ZidCache) -> bool {
        if base.self_zid != self.self_zid || updated.self_zid != self.self_zid {
            return false;
        }
        let peers: HashSet<Zid> = (base.entries.keys().chain(base.corrupt.iter()))
            .chain(updated.entries.keys().chain(updated.corrupt.iter()))
            .copied()
            .collect();
        let mut changed = false;
        for zid in peers {
            let (old, new) = (base.entries.get(&zid), updated.entries.get(&zid));
            let corrupt = updated.corrupt.contains(&zid);
            if old == new && base.corrupt.contains(&zid) == corrupt {
                continue;
            }
            match new {
                Some(e) => self.entries.insert(zid, e.clone()),
                None => self.entries.remove(&zid),
            };
            if corrupt {
                self.corrupt.insert(zid);
            } else {
                self.corrupt.remove(&zid);
            }
            changed = true;
        }
        changed
    }

    /// The integrity MAC of one peer row as schema `version` writes it:
    /// version 1 covers the ZID, secrets and verified flag, version 2 also
    /// each secret's expiry.
    fn row_mac(&self, zid: &Zid, e: &CacheEntry, version: i64) -> Vec<u8> {
        let flags = u8::from(e.rs1.is_some())
            | (u8::from(e.rs2.is_some()) << 1)
            | (u8::from(e.verified) << 2)
            | (u8::from(e.rs1_expires.is_some()) << 3)
            | (u8::from(e.rs2_expires.is_some()) << 4);
        let (rs1, rs2) = (e.rs1.unwrap_or([0; 32]), e.rs2.unwrap_or([0; 32]));
        let expiry = |t: Option<SystemTime>| t.map_or(0, unix_secs).to_be_bytes();
        let (exp1, exp2) = (expiry(e.rs1_expires), expiry(e.rs2_expires));
        let flags = [flags];
        let mut parts: Vec<&[u8]> = vec![zid, &flags, &rs1, &rs2];
        if version >= 2 {
            parts.extend([&exp1[..], &exp2[..]]);
        }
        mac(HashAlgo::S256, &self.mac_key, &parts)
    }

    /// Loads the cache at `path`, or starts a new one if there is no file
    /// (the file is only created by [`ZidCache::save`]).
    pub fn load(path: &Path) -> Result<ZidCache, CacheError> {
        if !path.exists() {
            return Ok(ZidCache::new());
        }
        let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        db.busy_timeout(std::time::Duration::from_secs(2))?;
        Self::read(&db)
    }

    fn read(db: &Connection) -> Result<ZidCache, CacheError> {
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            // An empty database: nothing was ever saved here.
            return Ok(ZidCache::new());
        }
        if !(1..=SCHEMA_VERSION).contains(&version) {
            return Err(CacheError::Corrupt("unknown schema version"));
        }
        let row: Option<(Vec<u8>, Vec<u8>)> = db
            .query_row("SELECT zid, mac_key FROM zrtp_self WHERE id = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let (zid, mut key) = row.ok_or(CacheError::Corrupt("no zrtp_self row"))?;
        let mut cache = ZidCache {
            self_zid: zid
                .try_into()
                .map_err(|_| CacheError::Corrupt("ZID length"))?,
            mac_key: key
                .as_slice()
                .try_into()
                .map_err(|_| CacheError::Corrupt("MAC key length"))?,
            entries: HashMap::new(),
            corrupt: HashSet::new(),
        };
        key.zeroize();
        let mut stmt = db.prepare(if version == 1 {
            "SELECT zid, rs1, rs2, verified, mac, NULL, NULL FROM zrtp_peers"
        } else {
            "SELECT zid, rs1, rs2, verified, mac, rs1_expires, rs2_expires FROM zrtp_peers"
        })?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Ok(zid) = <Zid>::try_from(r.get::<_, Vec<u8>>(0)?) else {
                continue; // Not even a ZID: nothing to attach a warning to.
            };
            let secret = |i: usize| -> rusqlite::Result<Result<Option<[u8; 32]>, ()>> {
                let mut v: Option<Vec<u8>> = r.get(i)?;
                let out = match &v {
                    None => Ok(None),
                    Some(b) => <[u8; 32]>::try_from(b.as_slice()).map(Some).map_err(|_| ()),
                };
                v.zeroize();
                Ok(out)
            };
            let (rs1, rs2) = (secret(1)?, secret(2)?);
            let verified: i64 = r.get(3)?;
            let tag: Vec<u8> = r.get(4)?;
            let expiry = |i: usize| -> rusqlite::Result<Result<Option<SystemTime>, ()>> {
                let t: Option<i64> = r.get(i)?;
                // Negative, or beyond what the platform's clock holds: damage.
                Ok(match t {
                    None => Ok(None),
                    Some(t) => u64::try_from(t)
                        .ok()
                        .and_then(from_unix)
                        .map(Some)
                        .ok_or(()),
                })
            };
            let (exp1, exp2) = (expiry(5)?, expiry(6)?);
            let (Ok(rs1), Ok(rs2), Ok(rs1_expires), Ok(rs2_expires)) = (rs1, rs2, exp1, exp2)
            else {
                cache.corrupt.insert(zid);
                continue;
            };
            let entry = CacheEntry {
                rs1,
                rs2,
                rs1_expires,
                rs2_expires,
                verified: verified != 0,
            };
            if ct_eq(&cache.row_mac(&zid, &entry, version), &tag) {
                cache.entries.insert(zid, entry);
            } else {
                cache.corrupt.insert(zid);
            }
        }
        Ok(cache)
    }

    /// Writes the whole cache to `path` in one transaction, creating the
    /// file (mode 0600) if needed. A peer whose row failed its integrity
    /// check, and that no call has renewed since, is written back as a row
    /// with no secrets whose MAC never checks: it loads as corrupt again
    /// and keeps raising a cache mismatch until a call with a verified SAS
    /// renews it or [`ZidCache::remove`] forgets it.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        create_private(path)?;
        let mut db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(2))?;
        let tx = db.transaction()?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 1 {
            tx.execute_batch(MIGRATE_FROM_1)?;
        }
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.execute(
            "INSERT OR REPLACE INTO zrtp_self (id, zid, mac_key) VALUES (0, ?1, ?2)",
            params![&self.self_zid[..], &self.mac_key[..]],
        )?;
        tx.execute("DELETE FROM zrtp_peers", [])?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO zrtp_peers (zid, rs1, rs2, verified, mac, rs1_expires, rs2_expires) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let expiry =
                |t: Option<SystemTime>| t.map(|t| i64::try_from(unix_secs(t)).unwrap_or(i64::MAX));
            for (zid, e) in &self.entries {
                ins.execute(params![
                    &zid[..],
                    e.rs1.as_ref().map(|s| &s[..]),
                    e.rs2.as_ref().map(|s| &s[..]),
                    e.verified,
                    self.row_mac(zid, e, SCHEMA_VERSION),
                    expiry(e.rs1_expires),
                    expiry(e.rs2_expires),
                ])?;
            }
            // Dropping the row would turn "warn" into "no history", which
            // trusts whoever comes next without a word.
            for zid in self
                .corrupt
                .iter()
                .filter(|z| !self.entries.contains_key(*z))
            {
                ins.execute(params![
                    &zid[..],
                    None::<&[u8]>,
                    None::<&[u8]>,
                    false,
                    &[0u8; 0][..],
                    None::<i64>,
                    None::<i64>,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Whole seconds from the Unix epoch to `t` (0 before it).
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time `secs` whole seconds after the Unix epoch, if the platform's
/// clock holds it.
fn from_unix(secs: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Creates `path` readable by its owner only, if it does not exist yet.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sotto-zidcache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("zid.cache")
    }

    #[test]
    fn merging_keeps_parallel_updates() {
        let mut shared = ZidCache::new();
        shared.update([1; 12], [1; 32], None, true, SystemTime::UNIX_EPOCH);
        let (base_a, base_b) = (shared.clone(), shared.clone());
        let (mut a, mut b) = (base_a.clone(), base_b.clone());
        a.update([1; 12], [2; 32], None, true, SystemTime::UNIX_EPOCH);
        b.update([3; 12], [3; 32], None, true, SystemTime::UNIX_EPOCH);
        b.set_verified(&[3; 12], true);
        assert!(shared.merge_changes(&base_a, &a));
        assert!(shared.merge_changes(&base_b, &b));
        assert!(!shared.merge_changes(&b, &b), "nothing new");
        assert_eq!(shared.get(&[1; 12]).unwrap().rs1, Some([2; 32]));
        assert_eq!(shared.get(&[1; 12]).unwrap().rs2, Some([1; 32]));
        assert!(shared.get(&[3; 12]).unwrap().verified);
        let mut removed = b.clone();
        removed.remove(&[3; 12]);
        assert!(shared.merge_changes(&b, &removed));
        assert!(shared.get(&[3; 12]).is_none());
        assert!(
            !shared.merge_changes(&ZidCache::new(), &ZidCache::new()),
            "another ZID"
        );
        assert_eq!(shared.len(), 1);
    }

    #[test]
    fn round_trip_and_corruption_is_per_entry() {
        let path = temp_path("rt");
        let mut c = ZidCache::new();
        c.update([1; 12], [7; 32], None, true, SystemTime::UNIX_EPOCH);
        c.update([1; 12], [8; 32], None, true, SystemTime::UNIX_EPOCH);
        c.update([2; 12], [9; 32], None, true, SystemTime::UNIX_EPOCH);
        assert!(c.set_verified(&[2; 12], true));
        c.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let d = ZidCache::load(&path).unwrap();
        assert_eq!(d.self_zid(), c.self_zid());
        assert_eq!(d.get(&[1; 12]).unwrap().rs2, Some([7; 32]));
        assert!(d.get(&[2; 12]).unwrap().verified);

        // Tamper with one row: only that peer is flagged.
        let db = Connection::open(&path).unwrap();
        db.execute(
            "UPDATE zrtp_peers SET verified = 0 WHERE zid = ?1",
            [&[2u8; 12][..]],
        )
        .unwrap();
        let d = ZidCache::load(&path).unwrap();
        assert!(d.get(&[2; 12]).is_none() && d.is_corrupt(&[2; 12]));
        assert!(d.get(&[1; 12]).is_some() && !d.is_corrupt(&[1; 12]));
        // Saved and loaded again, it is still flagged, not forgotten (a
        // forgotten peer would be trusted as new, with no warning), until
        // it is renewed or removed.
        d.save(&path).unwrap();
        let mut e = ZidCache::load(&path).unwrap();
        assert!(e.get(&[2; 12]).is_none() && e.is_corrupt(&[2; 12]));
        assert_eq!(e.get(&[1; 12]), d.get(&[1; 12]));
        e.remove(&[2; 12]);
        e.save(&path).unwrap();
        let f = ZidCache::load(&path).unwrap();
        assert!(!f.is_corrupt(&[2; 12]) && f.len() == 1);

        // A damaged self row or an unknown schema is refused outright.
        db.execute("UPDATE zrtp_self SET zid = x'00'", []).unwrap();
        assert!(matches!(ZidCache::load(&path), Err(CacheError::Corrupt(_))));
        db.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(ZidCache::load(&path), Err(CacheError::Corrupt(_))));
        drop(db);

        // Not a database at all.
        std::fs::write(
            &path,
            b"not a database, just some bytes that are long enough",
        )
        .unwrap();
        assert!(matches!(ZidCache::load(&path), Err(CacheError::Sqlite(_))));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// `secs` seconds after the Unix epoch.
    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expired_secrets_are_absent() {
        let (peer, t) = ([1; 12], 1_000_000);
        let mut c = ZidCache::new();
        c.update(peer, [7; 32], Some(at(t + 1)), true, at(t));
        assert!(c.set_verified(&peer, true));
        let live = c.get_live(&peer, at(t)).unwrap();
        assert_eq!(
            (live.rs1, live.rs1_expires),
            (Some([7; 32]), Some(at(t + 1)))
        );
        // One second later rs1 has expired: the peer is as good as unknown.
        assert!(c.get_live(&peer, at(t + 1)).is_none());
        assert!(c.get(&peer).is_some(), "still stored");
        // rs2 lives on its own expiry: a never-expiring rs1 rotated into
        // rs2 outlives the newer rs1 that expires.
        c.update(peer, [8; 32], None, true, at(t));
        c.update(peer, [9; 32], Some(at(t + 5)), true, at(t));
        let live = c.get_live(&peer, at(t + 10)).unwrap();
        assert_eq!((live.rs1, live.rs2), (None, Some([8; 32])));
        // A new secret after everything expired starts over: the expired
        // one is not rotated into rs2, and "verified" is not carried over.
        c.update(peer, [10; 32], Some(at(t + 20)), true, at(t + 10));
        c.update(peer, [11; 32], None, true, at(t + 30));
        let e = c.get(&peer).unwrap();
        assert_eq!((e.rs1, e.rs2, e.rs2_expires), (Some([11; 32]), None, None));
        assert!(!e.verified);
    }

    /// A version 1 file (no expiry columns, row MAC without them) written
    /// as Sotto wrote it before, by hand.
    fn write_version_1(path: &Path, c: &ZidCache, peer: Zid, e: &CacheEntry) {
        let db = Connection::open(path).unwrap();
        db.execute_batch(
            "CREATE TABLE zrtp_self (id INTEGER PRIMARY KEY CHECK (id = 0),
                 zid BLOB NOT NULL, mac_key BLOB NOT NULL);
             CREATE TABLE zrtp_peers (zid BLOB PRIMARY KEY, rs1 BLOB, rs2 BLOB,
                 verified INTEGER NOT NULL, mac BLOB NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        db.execute(
            "INSERT INTO zrtp_self (id, zid, mac_key) VALUES (0, ?1, ?2)",
            params![&c.self_zid[..], &c.mac_key[..]],
        )
        .unwrap();
        let flags = u8::from(e.rs1.is_some())
            | (u8::from(e.rs2.is_some()) << 1)
            | (u8::from(e.verified) << 2);
        let (rs1, rs2) = (e.rs1.unwrap(), e.rs2.unwrap());
        let tag = mac(HashAlgo::S256, &c.mac_key, &[&peer, &[flags], &rs1, &rs2]);
        db.execute(
            "INSERT INTO zrtp_peers (zid, rs1, rs2, verified, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&peer[..], &rs1[..], &rs2[..], e.verified, tag],
        )
        .unwrap();
    }

    #[test]
    fn version_1_files_load_with_secrets_that_never_expire() {
        let path = temp_path("v1");
        let peer = [4; 12];
        let mut c = ZidCache::new();
        c.update(peer, [1; 32], None, true, at(0));
        c.update(peer, [2; 32], None, true, at(0));
        assert!(c.set_verified(&peer, true));
        let old = c.get(&peer).unwrap().clone();
        write_version_1(&path, &c, peer, &old);
        let d = ZidCache::load(&path).unwrap();
        assert!(!d.is_corrupt(&peer));
        assert_eq!(d.get(&peer), Some(&old));
        assert!(d.get_live(&peer, at(u64::from(u32::MAX))).is_some());
        // Saved again, the file is version 2 and reads back the same.
        d.save(&path).unwrap();
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let e = ZidCache::load(&path).unwrap();
        assert_eq!((e.self_zid(), e.get(&peer)), (c.self_zid(), Some(&old)));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn the_row_mac_covers_the_expiry() {
        let path = temp_path("expiry-mac");
        let (peer, t) = ([5; 12], 1_000_000);
        let mut c = ZidCache::new();
        c.update(peer, [1; 32], Some(at(t + 1)), true, at(t));
        c.update(peer, [2; 32], Some(at(t + 2)), true, at(t));
        c.save(&path).unwrap();
        assert_eq!(ZidCache::load(&path).unwrap().get(&peer), c.get(&peer));
        let db = Connection::open(&path).unwrap();
        for edit in [
            "UPDATE zrtp_peers SET rs1_expires = rs1_expires + 31536000",
            "UPDATE zrtp_peers SET rs1_expires = NULL",
            "UPDATE zrtp_peers SET rs2_expires = rs2_expires - 1",
            "UPDATE zrtp_peers SET rs2_expires = -1",
        ] {
            c.save(&path).unwrap();
            db.execute(edit, []).unwrap();
            let d = ZidCache::load(&path).unwrap();
            assert!(d.is_corrupt(&peer) && d.get(&peer).is_none(), "{edit}");
        }
        drop(db);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn save_replaces_the_previous_contents() {
        let path = temp_path("replace");
        let mut c = ZidCache::new();
        c.update([1; 12], [7; 32], None, true, SystemTime::UNIX_EPOCH);
        c.update([2; 12], [8; 32], None, true, SystemTime::UNIX_EPOCH);
        c.save(&path).unwrap();
        c.remove(&[1; 12]);
        c.save(&path).unwrap();
        let d = ZidCache::load(&path).unwrap();
        assert_eq!(d.len(), 1);
        assert!(d.get(&[1; 12]).is_none() && !d.is_corrupt(&[1; 12]));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
