//! State shared by all workers, touched only on the control path
//! (authentication and allocation create/delete), never per relayed packet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::auth::{Credentials, Nonces};
use crate::core::Family;

/// Allocation quotas across all workers.
#[derive(Debug)]
pub struct Quotas {
    max_total: usize,
    max_per_user: usize,
    state: Mutex<QuotaState>,
}

#[derive(Debug, Default)]
struct QuotaState {
    total: usize,
    per_user: HashMap<Box<str>, usize>,
}

impl Quotas {
    /// At most `max_total` allocations, `max_per_user` per username
    /// (0 means unlimited).
    pub fn new(max_total: usize, max_per_user: usize) -> Self {
        Quotas {
            max_total,
            max_per_user,
            state: Mutex::new(QuotaState::default()),
        }
    }

    /// Takes one slot for `user`; false if a quota is reached.
    pub fn acquire(&self, user: &str) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total != 0 && s.total >= self.max_total {
            return false;
        }
        let used = s.per_user.get(user).copied().unwrap_or(0);
        if self.max_per_user != 0 && used >= self.max_per_user {
            return false;
        }
        s.total += 1;
        *s.per_user.entry(user.into()).or_insert(0) += 1;
        true
    }

    /// Returns the slot taken by [`Quotas::acquire`].
    pub fn release(&self, user: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                s.per_user.remove(user);
            }
        }
    }

    /// Allocations currently held across all workers.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// A token bucket in bytes: holds at most one second of `rate`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Bytes that may be spent now.
    pub(crate) tokens: u64,
    /// When tokens were last added.
    pub(crate) last: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn full(rate: u64, now: Instant) -> Self {
        Bucket {
            tokens: rate,
            last: now,
        }
    }

    /// Adds what `rate` earned since the last refill.
    pub(crate) fn refill(&mut self, now: Instant, rate: u64) {
        let dt = now.saturating_duration_since(self.last);
        let add = (dt.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
        if add > 0 {
            self.tokens = (self.tokens + add).min(rate);
            self.last = now;
        }
    }

    /// Takes `n` bytes if there are that many (always, at rate 0: no cap).
    pub(crate) fn take(&mut self, now: Instant, rate: u64, n: usize) -> bool {
        if rate == 0 {
            return true;
        }
        self.refill(now, rate);
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// The server-wide bandwidth cap: one bucket for every core, UDP workers
/// and TCP/TLS connections alike. Cores take it in slices (see
/// [`Bandwidth::take`]), so the lock is taken about once per slice rather
/// than once per packet.
#[derive(Debug)]
pub struct Bandwidth {
    rate: u64,
    bucket: Mutex<Option<Bucket>>,
}

impl Bandwidth {
    /// A cap of `rate` bytes per second (0 = no cap).
    pub fn new(rate: u64) -> Self {
        Bandwidth {
            rate,
            bucket: Mutex::new(None),
        }
    }

    /// The cap in bytes per second (0 = no cap).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `want` bytes, or all that is left if that is at least `need`
    /// (`need <= want`); returns how many were taken, 0 if fewer than
    /// `need` were left. The bucket starts full, as each allocation's does.
    pub fn take(&self, now: Instant, need: u64, want: u64) -> u64 {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let b = b.get_or_insert_with(|| Bucket::full(self.rate, now));
        b.refill(now, self.rate);
        if b.tokens < need {
            return 0;
        }
        let got = want.min(b.tokens);
        b.tokens -= got;
        got
    }
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Shared {
    credentials: RwLock<Arc<Credentials>>,
    /// Nonce minting and checking (one key for all workers).
    pub nonces: Nonces,
    /// Allocation quotas.
    pub quotas: Quotas,
    /// The server-wide bandwidth cap (none unless set with
    /// [`Shared::with_bps_total`]).
    pub bandwidth: Bandwidth,
    reservations: Mutex<HashMap<[u8; 8], Held>>,
    max_reservations: usize,
    next_token: AtomicU64,
    /// Ports of live relayed sockets, IPv4 then IPv6: the only ports of
    /// the relay's own relayed addresses a client may reach as a peer.
    relayed_ports: [PortSet; 2],
}

/// A set of ports, lock-free: one bit per port.
#[derive(Debug)]
struct PortSet(Box<[AtomicU64]>);

impl PortSet {
    fn new() -> Self {
        PortSet((0..1024).map(|_| AtomicU64::new(0)).collect())
    }

    fn set(&self, port: u16, on: bool) {
        let (word, bit) = (usize::from(port / 64), 1u64 << (port % 64));
        if on {
            self.0[word].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.0[word].fetch_and(!bit, Ordering::Relaxed);
        }
    }

    fn contains(&self, port: u16) -> bool {
        let (word, bit) = (usize::from(port / 64), 1u64 << (port % 64));
        self.0[word].load(Ordering::Relaxed) & bit != 0
    }
}

/// How long a RESERVATION-TOKEN stays redeemable and its port held
/// (RFC 8656 §7.2: about 30 s).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Reservations held at once, server-wide: each holds a bound UDP port,
/// so this bounds what they can take of the ephemeral range (about 28000
/// ports on Linux) whatever the allocation quotas are.
pub const MAX_RESERVATIONS: usize = 4096;

/// A port held under a RESERVATION-TOKEN.
#[derive(Debug)]
struct Held {
    expires: Instant,
    /// The held port's family, which the redeeming allocation gets.
    family: Family,
    /// Whose quota the held port counts against.
    quota_user: Box<str>,
}

/// Why [`Shared::redeem`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    /// Never issued, redeemed already, or ended (and its port closed).
    #[error("unknown reservation token")]
    Unknown,
    /// Issued but expired, its port still held: the caller closes it.
    #[error("expired reservation token")]
    Expired,
}

/// Why [`Shared::reserve`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// The user's (or the total) allocation quota is full.
    #[error("allocation quota reached")]
    Quota,
    /// [`MAX_RESERVATIONS`] (or the configured cap) are held already.
    #[error("too many reservations")]
    Capacity,
}

impl Shared {
    /// Shared state with the given credentials, nonce key and quotas.
    pub fn new(credentials: Credentials, nonces: Nonces, quotas: Quotas) -> Self {
        Shared {
            credentials: RwLock::new(Arc::new(credentials)),
            nonces,
            quotas,
            bandwidth: Bandwidth::new(0),
            reservations: Mutex::new(HashMap::new()),
            max_reservations: MAX_RESERVATIONS,
            next_token: AtomicU64::new(0),
            relayed_ports: [PortSet::new(), PortSet::new()],
        }
    }

    /// The same, holding at most `n` reservations at once.
    pub fn with_max_reservations(mut self, n: usize) -> Self {
        self.max_reservations = n;
        self
    }

    /// The same, with a server-wide cap of `bps` bytes per second shared
    /// by every core (0 = no cap).
    pub fn with_bps_total(mut self, bps: u64) -> Self {
        self.bandwidth = Bandwidth::new(bps);
        self
    }

    /// A fresh, unguessable RESERVATION-TOKEN for a `family` port, held
    /// until `now + RESERVATION_LIFETIME`. The held port takes a slot of
    /// `quota_user`'s allocation quota until it is redeemed or released,
    /// so reserving cannot hold ports outside the quotas.
    pub fn reserve(
        &self,
        now: Instant,
        family: Family,
        quota_user: &str,
    ) -> Result<[u8; 8], ReserveError> {
        let mut m = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.max_reservations {
            return Err(ReserveError::Capacity);
        }
        if !self.quotas.acquire(quota_user) {
            return Err(ReserveError::Quota);
        }
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = self.nonces.token(n);
        let held = Held {
            expires: now + RESERVATION_LIFETIME,
            family,
            quota_user: quota_user.into(),
        };
        m.insert(token, held);
        Ok(token)
    }

    /// Redeems a token once: the held port's family. Either way a known
    /// token's reservation ends and frees its quota slot (the redeeming
    /// allocation takes its own); for [`RedeemError::Expired`] the caller
    /// must have the held port closed ([`crate::core::Event::Unreserve`]):
    /// nobody else will, as the reservation is gone.
    pub fn redeem(&self, token: &[u8; 8], now: Instant) -> Result<Family, RedeemError> {
        let held = self.take_reservation(token).ok_or(RedeemError::Unknown)?;
        if held.expires > now {
            Ok(held.family)
        } else {
            Err(RedeemError::Expired)
        }
    }

    /// Ends a reservation that was not redeemed (it expired, or its port
    /// could not be bound) and frees its quota slot. False if it had been
    /// redeemed or ended already: then the driver holds no port for it.
    pub fn unreserve(&self, token: &[u8; 8]) -> bool {
        self.take_reservation(token).is_some()
    }

    fn take_reservation(&self, token: &[u8; 8]) -> Option<Held> {
        let held = self
            .reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token)?;
        self.quotas.release(&held.quota_user);
        Some(held)
    }

    /// Whether `port` is the relayed port of a live allocation of
    /// `family` on this relay (any worker or connection).
    pub fn relayed_port_live(&self, family: Family, port: u16) -> bool {
        self.relayed_ports[family as usize].contains(port)
    }

    /// Marks `port` as held by a live allocation of `family`, or no longer.
    pub(crate) fn set_relayed_port(&self, family: Family, port: u16, live: bool) {
        self.relayed_ports[family as usize].set(port, live);
    }

    /// Reservations held now.
    pub fn reservations(&self) -> usize {
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The current credential store.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new credential store (SIGHUP reload).
    pub fn replace_credentials(&self, credentials: Credentials) {
        *self.credentials.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(credentials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_user_and_total() {
        let q = Quotas::new(3, 2);
        assert!(q.acquire("a"));
        assert!(q.acquire("a"));
        assert!(!q.acquire("a"));
        assert!(q.acquire("b"));
        assert!(!q.acquire("c"));
        q.release("a");
        assert!(q.acquire("c"));
        assert_eq!(q.total(), 3);
    }

    #[test]
    fn reservations_count_against_quotas_and_a_cap() {
        let s = Shared::new(
            Credentials::new(),
            Nonces::new([1; 32], 600),
            Quotas::new(0, 2),
        )
        .with_max_reservations(3);
        let now = Instant::now();
        let a = s.reserve(now, Family::V6, "a").unwrap();
        s.reserve(now, Family::V4, "a").unwrap();
        assert_eq!(s.reserve(now, Family::V4, "a"), Err(ReserveError::Quota));
        s.reserve(now, Family::V4, "b").unwrap();
        assert_eq!(s.reserve(now, Family::V4, "c"), Err(ReserveError::Capacity));
        assert_eq!(s.quotas.total(), 3);
        // Redeeming gives the family and frees the slot, once.
        assert_eq!(s.redeem(&a, now), Ok(Family::V6));
        assert_eq!(s.redeem(&a, now), Err(RedeemError::Unknown));
        assert!(!s.unreserve(&a));
        assert_eq!((s.quotas.total(), s.reservations()), (2, 2));
        // An expired token is not redeemable, and frees its slot too.
        let late = s.reserve(now, Family::V4, "a").unwrap();
        assert_eq!(
            s.redeem(&late, now + RESERVATION_LIFETIME),
            Err(RedeemError::Expired)
        );
        assert_eq!((s.quotas.total(), s.reservations()), (2, 2));
    }
}
