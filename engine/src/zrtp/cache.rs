//! The retained-secret cache (RFC 6189 §4.9): our ZID and, per peer ZID,
//! rs1, rs2 and the SAS-verified flag.
//!
//! Stored as a small file of our own rather than SQLite: the engine then
//! links no SQLite at all, so it cannot clash with the `libsqlite3-sys`
//! that `sqlx` brings into the signalling crate (DESIGN.md). Writes go to a
//! temporary file that is synced and renamed over the old one, so a crash
//! leaves either the old or the new cache. Each entry carries an
//! HMAC-SHA256 under a random key kept in the file header, which detects
//! a corrupted entry (it is then treated as a cache mismatch, never as
//! "no history"); it is an integrity check, not protection against
//! someone who can read the file.
//!
//! Layout: `"SOTTOZC1" | mac key (32) | our ZID (12) | count (u32) |
//! header MAC (32)`, then per entry `ZID (12) | flags (1) | rs1 (32) |
//! rs2 (32) | MAC (32)`.

use super::algo::HashAlgo;
use super::crypto::{ct_eq, mac, random};
use super::message::Zid;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use zeroize::{Zeroize, ZeroizeOnDrop};

const MAGIC: &[u8; 8] = b"SOTTOZC1";
const HEADER_LEN: usize = 8 + 32 + 12 + 4 + 32;
const ENTRY_LEN: usize = 12 + 1 + 32 + 32 + 32;

/// Retained secrets shared with one peer.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CacheEntry {
    /// Newest retained secret.
    pub rs1: Option<[u8; 32]>,
    /// The one before.
    pub rs2: Option<[u8; 32]>,
    /// The user compared the SAS with this peer and confirmed it.
    pub verified: bool,
}

impl std::fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheEntry")
            .field("rs1", &self.rs1.is_some())
            .field("rs2", &self.rs2.is_some())
            .field("verified", &self.verified)
            .finish()
    }
}

/// Cache file problems.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("ZID cache I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The header is not ours or is damaged (entries are checked one by one).
    #[error("ZID cache header is corrupt")]
    CorruptHeader,
}

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

    /// What we retained about `peer`.
    pub fn get(&self, peer: &Zid) -> Option<&CacheEntry> {
        self.entries.get(peer)
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

    /// Stores a new rs1 after a successful DH exchange (§4.6.1): the old rs1
    /// becomes rs2. A mismatch clears the verified flag.
    pub(crate) fn update(&mut self, peer: Zid, new_rs1: [u8; 32], keep_verified: bool) {
        let e = self.entries.entry(peer).or_default();
        e.rs2 = e.rs1.take();
        e.rs1 = Some(new_rs1);
        e.verified &= keep_verified;
        self.corrupt.remove(&peer);
    }

    /// Forgets everything about `peer`.
    pub fn remove(&mut self, peer: &Zid) {
        self.entries.remove(peer);
        self.corrupt.remove(peer);
    }

    fn entry_mac(&self, body: &[u8]) -> Vec<u8> {
        mac(HashAlgo::S256, &self.mac_key, &[body])
    }

    /// Serialises the cache.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.entries.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.mac_key);
        out.extend_from_slice(&self.self_zid);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        let m = self.entry_mac(&out);
        out.extend_from_slice(&m);
        let mut zids: Vec<&Zid> = self.entries.keys().collect();
        zids.sort();
        for zid in zids {
            let e = &self.entries[zid];
            let start = out.len();
            out.extend_from_slice(zid);
            out.push(
                u8::from(e.rs1.is_some())
                    | (u8::from(e.rs2.is_some()) << 1)
                    | (u8::from(e.verified) << 2),
            );
            out.extend_from_slice(&e.rs1.unwrap_or([0; 32]));
            out.extend_from_slice(&e.rs2.unwrap_or([0; 32]));
            let m = self.entry_mac(&out[start..]);
            out.extend_from_slice(&m);
        }
        out
    }

    /// Parses a serialised cache. Entries whose MAC fails are not loaded
    /// but remembered as corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<ZidCache, CacheError> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(CacheError::CorruptHeader);
        }
        let mut cache = ZidCache {
            self_zid: bytes[40..52]
                .try_into()
                .map_err(|_| CacheError::CorruptHeader)?,
            mac_key: bytes[8..40]
                .try_into()
                .map_err(|_| CacheError::CorruptHeader)?,
            entries: HashMap::new(),
            corrupt: HashSet::new(),
        };
        if !ct_eq(&cache.entry_mac(&bytes[..56]), &bytes[56..HEADER_LEN]) {
            return Err(CacheError::CorruptHeader);
        }
        let count = u32::from_be_bytes([bytes[52], bytes[53], bytes[54], bytes[55]]) as usize;
        let body = &bytes[HEADER_LEN..];
        if body.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(CacheError::CorruptHeader);
        }
        for rec in body.chunks_exact(ENTRY_LEN) {
            let (data, tag) = rec.split_at(ENTRY_LEN - 32);
            let mut zid = [0u8; 12];
            zid.copy_from_slice(&data[..12]);
            if !ct_eq(&cache.entry_mac(data), tag) {
                cache.corrupt.insert(zid);
                continue;
            }
            let flags = data[12];
            let secret = |off: usize| {
                let mut s = [0u8; 32];
                s.copy_from_slice(&data[off..off + 32]);
                s
            };
            cache.entries.insert(
                zid,
                CacheEntry {
                    rs1: (flags & 1 != 0).then(|| secret(13)),
                    rs2: (flags & 2 != 0).then(|| secret(45)),
                    verified: flags & 4 != 0,
                },
            );
        }
        Ok(cache)
    }

    /// Loads the cache at `path`, or starts a new one if there is no file.
    pub fn load(path: &Path) -> Result<ZidCache, CacheError> {
        match std::fs::read(path) {
            Ok(bytes) => ZidCache::from_bytes(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ZidCache::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the cache atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.to_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_per_entry() {
        let mut c = ZidCache::new();
        c.update([1; 12], [7; 32], true);
        c.update([1; 12], [8; 32], true);
        c.update([2; 12], [9; 32], true);
        assert!(c.set_verified(&[2; 12], true));
        let bytes = c.to_bytes();
        let d = ZidCache::from_bytes(&bytes).unwrap();
        assert_eq!(d.self_zid(), c.self_zid());
        assert_eq!(d.get(&[1; 12]).unwrap().rs2, Some([7; 32]));
        assert!(d.get(&[2; 12]).unwrap().verified);
        // Flip a byte inside the second entry's rs1.
        let mut bad = bytes.clone();
        bad[HEADER_LEN + ENTRY_LEN + 20] ^= 1;
        let d = ZidCache::from_bytes(&bad).unwrap();
        assert!(d.get(&[2; 12]).is_none() && d.is_corrupt(&[2; 12]));
        assert!(d.get(&[1; 12]).is_some());
        // Header damage is refused outright.
        let mut bad = bytes.clone();
        bad[45] ^= 1;
        assert!(ZidCache::from_bytes(&bad).is_err());
        assert!(ZidCache::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
}
