//! The sans-IO allocation core: one per worker.
//!
//! It owns no socket and reads no clock. Datagrams from clients and from
//! peers go in through [`Relay::handle_input`]; relayed data comes back as
//! a zero-copy [`Forward`] pointing into the caller's buffer (the fast
//! path: no allocation, no lock), while control answers queue up as
//! [`Transmit`]s and socket requests as [`Event`]s.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{Key, Verifier};
use crate::policy::{PeerPolicy, Verdict};
use crate::shared::{Bucket, RESERVATION_LIFETIME, RedeemError, ReserveError, Shared};
use crate::stun::{self, Builder, ChannelData, Class, Integrity, Message, attr, method};

/// Bytes a driver must leave free before peer data so that a ChannelData
/// header, or a Data indication's (STUN header, XOR-PEER-ADDRESS for IPv6,
/// DATA attribute header), can be written in place.
pub const PEER_HEADROOM: usize = stun::HEADER_LEN + 4 + 20 + 4;

/// How a client reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

/// A client 5-tuple as the driver names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    /// Transport protocol.
    pub transport: Transport,
    /// Driver-defined listener or connection number.
    pub listener: u32,
    /// The client's address.
    pub remote: SocketAddr,
}

/// Handle of an allocation and of its relayed socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayId {
    index: u32,
    generation: u32,
}

impl RelayId {
    /// A small integer, unique among live allocations of one core.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// Address family of a relayed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address as encoded: an IPv4-mapped IPv6 address
    /// is IPv6, so an IPv4 allocation refuses it as a peer (443).
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Input to the core.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram (or one framed message) from a client.
    Client {
        /// Who sent it.
        client: ClientId,
        /// The bytes.
        data: &'a [u8],
    },
    /// A datagram received on a relayed socket. `data[..PEER_HEADROOM]` is
    /// scratch space; the payload starts at `PEER_HEADROOM`.
    Peer {
        /// The relayed socket it arrived on.
        relay: RelayId,
        /// The peer that sent it.
        from: SocketAddr,
        /// Headroom followed by the payload.
        data: &'a mut [u8],
    },
}

/// Where to send bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To a client.
    Client(ClientId),
    /// To a peer, from an allocation's relayed socket.
    Peer {
        /// Relayed socket to send from.
        relay: RelayId,
        /// The peer.
        addr: SocketAddr,
    },
}

/// A zero-copy relay instruction: send `data[range]` of the input buffer,
/// followed by `pad` zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Destination.
    pub dest: Dest,
    /// Byte range of the input buffer to send.
    pub range: std::ops::Range<usize>,
    /// Zero bytes to append: a Data indication's last attribute is padded
    /// to 4 bytes, which the input buffer has no room after the payload for.
    pub pad: usize,
}

/// A datagram the core wants sent (control path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dest: Dest,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bind a relayed UDP socket for this allocation, then call
    /// [`Relay::relay_bound`].
    BindRelay {
        /// The allocation.
        relay: RelayId,
        /// Address family to bind.
        family: Family,
        /// Bind an even port (EVEN-PORT).
        even_port: bool,
        /// Hold or use a reserved port (RESERVATION-TOKEN).
        reservation: Reservation,
        /// Set the DF bit on what the relayed socket sends (DONT-FRAGMENT,
        /// RFC 8656 §7.2): IP_PMTUDISC_DO / IPV6_PMTUDISC_DO.
        dont_fragment: bool,
    },
    /// The allocation is gone: close its relayed socket.
    Closed {
        /// The allocation.
        relay: RelayId,
    },
    /// A reservation this core made ended unredeemed (it expired, or
    /// [`Relay::release_reservations`]): close the port held under it.
    Unreserve {
        /// The RESERVATION-TOKEN.
        token: [u8; 8],
    },
}

/// Port reservation asked of the driver with [`Event::BindRelay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// None.
    None,
    /// Also hold the next (odd) port under this token.
    ReserveNext([u8; 8]),
    /// Use the port held under this token.
    Redeem([u8; 8]),
}

/// Why input was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Not STUN, not ChannelData, or malformed.
    #[error("malformed")]
    Malformed,
    /// No allocation for this client or relayed socket.
    #[error("no allocation")]
    NoAllocation,
    /// No permission for the peer.
    #[error("no permission")]
    NoPermission,
    /// ChannelData on an unbound channel.
    #[error("no channel")]
    NoChannel,
    /// Unauthenticated request over the per-IP rate.
    #[error("rate limited")]
    RateLimited,
    /// Over the allocation's or the worker's bandwidth cap.
    #[error("bandwidth cap")]
    Bandwidth,
    /// A message we do not handle (responses, unknown indications).
    #[error("unexpected message")]
    Unexpected,
    /// A Send indication with an attribute we must understand and do not,
    /// or with DONT-FRAGMENT on an allocation whose socket does not set
    /// DF (RFC 8656 §11.2; RFC 8489 §7.3.2).
    #[error("unknown comprehension-required attribute")]
    UnknownAttribute,
}

impl DropReason {
    /// All reasons, in `index()` order.
    pub const ALL: [DropReason; 8] = [
        DropReason::Malformed,
        DropReason::NoAllocation,
        DropReason::NoPermission,
        DropReason::NoChannel,
        DropReason::RateLimited,
        DropReason::Bandwidth,
        DropReason::Unexpected,
        DropReason::UnknownAttribute,
    ];

    /// Index into [`Stats::drops`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoAllocation => "no_allocation",
            DropReason::NoPermission => "no_permission",
            DropReason::NoChannel => "no_channel",
            DropReason::RateLimited => "rate_limited",
            DropReason::Bandwidth => "bandwidth",
            DropReason::Unexpected => "unexpected",
            DropReason::UnknownAttribute => "unknown_attribute",
        }
    }
}

/// Cumulative counters of one core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets relayed client -> peer.
    pub c2p_packets: u64,
    /// Payload bytes relayed client -> peer.
    pub c2p_bytes: u64,
    /// Packets relayed peer -> client.
    pub p2c_packets: u64,
    /// Payload bytes relayed peer -> client.
    pub p2c_bytes: u64,
    /// Requests that failed authentication (bad key, unknown user, expired).
    pub auth_failures: u64,
    /// Peer addresses refused by policy.
    pub denied_peers: u64,
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations gone (deleted or expired).
    pub allocations_closed: u64,
    /// Drops by [`DropReason::index`].
    pub drops: [u64; DropReason::ALL.len()],
}

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// The realm.
    pub realm: String,
    /// Default and minimum allocation lifetime (RFC 8656: 600 s).
    pub default_lifetime: Duration,
    /// Maximum allocation lifetime (RFC 8656: 3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime (300 s, fixed by RFC 8656).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (600 s, fixed by RFC 8656).
    pub channel_lifetime: Duration,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
    /// Bytes per second per allocation, both directions (0 = no cap). The
    /// server-wide cap is in [`Shared::bandwidth`], shared by all cores.
    pub bps_per_allocation: u64,
    /// Unauthenticated requests per second per source IPv4 address or IPv6
    /// /64 (burst twice that).
    pub unauth_per_ip_per_s: u32,
    /// Peer address policy.
    pub policy: PeerPolicy,
    /// Relayed address families this server offers.
    pub families: Vec<Family>,
    /// Wall clock (Unix seconds) at `epoch`, for REST credential expiry
    /// until a driver passes the clock it reads
    /// ([`Relay::set_wall_clock`]).
    pub unix_at_epoch: u64,
    /// The instant all `now` values are measured from.
    pub epoch: Instant,
}

impl Config {
    /// RFC defaults with the given realm, epoch and wall clock.
    pub fn new(realm: &str, epoch: Instant, unix_at_epoch: u64) -> Self {
        Config {
            realm: realm.to_owned(),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            max_permissions: 64,
            max_channels: 64,
            bps_per_allocation: 0,
            unauth_per_ip_per_s: 50,
            policy: PeerPolicy::default(),
            families: vec![Family::V4, Family::V6],
            unix_at_epoch,
            epoch,
        }
    }
}

#[derive(Debug)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    /// Where its data goes: `peer`, or the local address of one of our
    /// own relayed addresses ([`PeerPolicy::local_of`]).
    send_to: SocketAddr,
    /// `peer` is one of our own relayed addresses: data flows only while
    /// its port is a live allocation's.
    own: bool,
    expires: Instant,
}

#[derive(Debug)]
struct Permission {
    ip: IpAddr,
    expires: Instant,
    /// One of our own relayed addresses ([`Verdict::RelayedPortsOnly`]).
    own: bool,
}

#[derive(Debug)]
struct Allocation {
    client: ClientId,
    generation: u32,
    relayed: Option<SocketAddr>,
    family: Family,
    username: Box<str>,
    /// The quota this allocation holds a slot of ([`crate::auth::Verified::quota_user`]).
    quota_user: Box<str>,
    key: Key,
    integrity: Integrity,
    allocate_tid: [u8; 12],
    token: Option<[u8; 8]>,
    expires: Instant,
    creds_expire_unix: Option<u64>,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    bucket: Bucket,
    /// The relayed socket sets DF on all it sends (DONT-FRAGMENT in the
    /// Allocate request).
    dont_fragment: bool,
}

impl Allocation {
    /// The live permission for `ip`, if any.
    fn permission(&self, ip: IpAddr, now: Instant) -> Option<&Permission> {
        self.permissions
            .iter()
            .find(|p| p.ip == ip && p.expires > now)
    }
}

/// What authentication established for a request.
type Auth<'m> = crate::auth::Verified<'m>;

/// The per-worker TURN allocation core.
#[derive(Debug)]
pub struct Relay {
    config: Config,
    shared: Arc<Shared>,
    slots: Vec<Option<Allocation>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    by_client: HashMap<ClientId, u32>,
    unauth: RateTable,
    /// Bytes taken from the server-wide budget and not spent yet.
    total_lease: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Reservations this core made, oldest (first to expire) first; it
    /// ends them when they expire, whoever else could redeem them.
    reservations: VecDeque<(Instant, [u8; 8])>,
    next_sweep: Option<Instant>,
    stats: Stats,
    live: usize,
    tid_counter: u64,
    /// The policy maps some relayed addresses to local ones
    /// ([`PeerPolicy::translates`]).
    translates: bool,
    /// The wall clock (Unix seconds) at an instant, as last passed in.
    wall: (Instant, u64),
}

/// Control messages queued at most; beyond, the oldest are dropped.
const MAX_QUEUED: usize = 4096;
/// Sources (IPv4 addresses, IPv6 /64s) the unauthenticated rate limiter
/// tracks; beyond, the least recently used is forgotten.
const MAX_TRACKED_IPS: usize = 65_536;
/// A core leases the server-wide budget in slices of 1/64 of a second's
/// worth: few enough lock round trips, little held back by idle cores.
const LEASE_SLICES: u64 = 64;
/// How often expiries are swept.
const SWEEP: Duration = Duration::from_secs(1);

const KNOWN_REQUIRED: &[u16] = &[
    attr::MAPPED_ADDRESS,
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::ERROR_CODE,
    attr::CHANNEL_NUMBER,
    attr::LIFETIME,
    attr::BANDWIDTH,
    attr::XOR_PEER_ADDRESS,
    attr::DATA,
    attr::REALM,
    attr::NONCE,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::EVEN_PORT,
    attr::REQUESTED_TRANSPORT,
    attr::DONT_FRAGMENT,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::PASSWORD_ALGORITHM,
    attr::RESERVATION_TOKEN,
    attr::XOR_MAPPED_ADDRESS,
];

/// The unauthenticated rate limiter's buckets by source, the least
/// recently used forgotten first when [`MAX_TRACKED_IPS`] are tracked (the
/// table used to be cleared whole, which gave every limited source a
/// fresh burst).
#[derive(Debug, Default)]
struct RateTable {
    /// Each source's bucket and the stamp of its last use.
    buckets: HashMap<IpAddr, (Bucket, u64)>,
    /// Uses, oldest first; an entry whose stamp is no longer its source's
    /// last is stale and skipped.
    uses: VecDeque<(IpAddr, u64)>,
    clock: u64,
}

impl RateTable {
    /// The bucket of `key` (full, twice `rate`, if new), marked as used.
    fn bucket(&mut self, key: IpAddr, now: Instant, rate: u64) -> &mut Bucket {
        self.clock += 1;
        let stamp = self.clock;
        if !self.buckets.contains_key(&key) {
            while self.buckets.len() >= MAX_TRACKED_IPS {
                self.evict_least_recently_used();
            }
        }
        if self.uses.len() >= 4 * MAX_TRACKED_IPS {
            let buckets = &self.buckets;
            self.uses
                .retain(|(k, s)| buckets.get(k).is_some_and(|(_, last)| last == s));
        }
        self.uses.push_back((key, stamp));
        let entry = self.buckets.entry(key).or_insert((
            Bucket {
                tokens: 2 * rate,
                last: now,
            },
            stamp,
        ));
        entry.1 = stamp;
        &mut entry.0
    }

    fn evict_least_recently_used(&mut self) {
        while let Some((key, stamp)) = self.uses.pop_front() {
            if self
                .buckets
                .get(&key)
                .is_some_and(|(_, last)| *last == stamp)
            {
                self.buckets.remove(&key);
                return;
            }
        }
    }
}

/// What the unauthenticated rate limiter counts by: an IPv4 address, or
/// an IPv6 address's /64 (one host or site has a whole /64 to send from).
fn rate_key(ip: IpAddr) -> IpAddr {
    match sotto_addr::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !((1u128 << 64) - 1),
        )),
        v4 => v4,
    }
}

/// An error answer: code and reason phrase.
type Reject = (u16, &'static str);

impl Relay {
    /// A core with its own allocation table over the shared state.
    pub fn new(config: Config, shared: Arc<Shared>) -> Self {
        Relay {
            translates: config.policy.translates(),
            wall: (config.epoch, config.unix_at_epoch),
            config,
            shared,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
            unauth: RateTable::default(),
            total_lease: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            reservations: VecDeque::new(),
            next_sweep: None,
            stats: Stats::default(),
            live: 0,
            tid_counter: 0,
        }
    }

    /// The wall clock as the driver read it at `now`, for REST credential
    /// expiry. Drivers pass it with the time they handle input at, so
    /// that a step of the system clock (NTP correcting it after the relay
    /// started) counts at once; without it the wall clock at
    /// [`Config::epoch`] is advanced by the monotonic clock.
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        let unix = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.wall = (now, unix);
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Live allocations in this core.
    pub fn allocations(&self) -> usize {
        self.live
    }

    /// The first live, bound allocation (tests and fuzzing).
    pub fn first_allocation(&self) -> Option<RelayId> {
        self.slots.iter().enumerate().find_map(|(i, a)| {
            a.as_ref().filter(|a| a.relayed.is_some()).map(|a| RelayId {
                index: i as u32,
                generation: a.generation,
            })
        })
    }

    /// The relayed address of a live allocation.
    pub fn relayed_addr(&self, relay: RelayId) -> Option<SocketAddr> {
        self.get(relay).and_then(|a| a.relayed)
    }

    /// Handles one input. `Ok(Some(_))` is data to relay from the input
    /// buffer; control answers are queued for [`Relay::poll_transmit`].
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: Input<'_>,
    ) -> Result<Option<Forward>, DropReason> {
        let r = match input {
            Input::Client { client, data } => self.on_client(now, client, data),
            Input::Peer { relay, from, data } => self.on_peer(now, relay, from, data),
        };
        if let Err(reason) = r {
            self.stats.drops[reason.index()] += 1;
        }
        r
    }

    /// Expires allocations, permissions, channels and reservations.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| t > now) {
            return;
        }
        while let Some(&(expires, token)) = self.reservations.front()
            && expires <= now
        {
            self.reservations.pop_front();
            self.end_reservation(token);
        }
        for i in 0..self.slots.len() {
            let Some(a) = self.slots[i].as_mut() else {
                continue;
            };
            if a.expires <= now {
                self.remove(i as u32);
                continue;
            }
            a.permissions.retain(|p| p.expires > now);
            a.channels.retain(|c| c.expires > now);
        }
        self.next_sweep = (self.live > 0 || !self.reservations.is_empty()).then(|| now + SWEEP);
    }

    /// Ends every reservation this core made and still held, for a driver
    /// whose core goes away (a TCP/TLS connection closing): nothing would
    /// expire them later. Queues an [`Event::Unreserve`] for each.
    pub fn release_reservations(&mut self) {
        while let Some((_, token)) = self.reservations.pop_front() {
            self.end_reservation(token);
        }
    }

    /// Frees a reservation's quota slot and, unless it was redeemed, has
    /// the driver close its port.
    fn end_reservation(&mut self, token: [u8; 8]) {
        if self.shared.unreserve(&token) {
            self.events.push_back(Event::Unreserve { token });
        }
    }

    /// The next datagram to send on the control path.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Relay::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// The driver's answer to [`Event::BindRelay`]: the bound relayed
    /// address, or `None` if no socket could be bound.
    pub fn relay_bound(&mut self, now: Instant, relay: RelayId, addr: Option<SocketAddr>) {
        let Some(a) = self.get_mut(relay) else {
            return;
        };
        match addr {
            Some(addr) => {
                a.relayed = Some(addr);
                let (client, family) = (a.client, a.family);
                let tid = a.allocate_tid;
                self.shared.set_relayed_port(family, addr.port(), true);
                self.stats.allocations_created += 1;
                let msg = self.allocate_success(now, relay.index, tid);
                self.queue(Dest::Client(client), msg);
            }
            None => {
                let (client, tid, key, integrity) =
                    (a.client, a.allocate_tid, a.key.clone(), a.integrity);
                // The odd port may be held although the allocation failed
                // (its socket could not be registered): close it.
                if let Some(token) = a.token {
                    self.end_reservation(token);
                }
                self.remove(relay.index);
                let mut b = Builder::new(method::ALLOCATE, Class::Error, tid);
                b.error(508, "Insufficient Capacity")
                    .integrity(integrity, &key.0);
                self.queue(Dest::Client(client), b.finish_with_fingerprint());
            }
        }
    }

    /// Removes every allocation of a client whose connection closed (TCP/TLS).
    pub fn client_gone(&mut self, client: ClientId) {
        if let Some(&i) = self.by_client.get(&client) {
            self.remove(i);
        }
    }

    fn get(&self, relay: RelayId) -> Option<&Allocation> {
        self.slots
            .get(relay.index as usize)?
            .as_ref()
            .filter(|a| a.generation == relay.generation)
    }

    fn get_mut(&mut self, relay: RelayId) -> Option<&mut Allocation> {
        self.slots
            .get_mut(relay.index as usize)?
            .as_mut()
            .filter(|a| a.generation == relay.generation)
    }

    fn id_of(&self, index: u32) -> RelayId {
        RelayId {
            index,
            generation: self.generations[index as usize],
        }
    }

    fn remove(&mut self, index: u32) {
        let Some(a) = self.slots[index as usize].take() else {
            return;
        };
        self.by_client.remove(&a.client);
        self.shared.quotas.release(&a.quota_user);
        self.live -= 1;
        if let Some(addr) = a.relayed {
            self.shared.set_relayed_port(a.family, addr.port(), false);
            self.stats.allocations_closed += 1;
        }
        self.events.push_back(Event::Closed {
            relay: RelayId {
                index,
                generation: a.generation,
            },
        });
        self.free.push(index);
    }

    fn queue(&mut self, dest: Dest, data: Vec<u8>) {
        if self.transmits.len() >= MAX_QUEUED {
            self.transmits.pop_front();
        }
        self.transmits.push_back(Transmit { dest, data });
    }

    fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.config.epoch).as_secs()
    }

    /// The wall clock at `now`: the last one passed in with
    /// [`Relay::set_wall_clock`], advanced by the monotonic clock since.
    fn unix(&self, now: Instant) -> u64 {
        let (at, unix) = self.wall;
        unix + now.saturating_duration_since(at).as_secs()
    }

    fn spend(&mut self, now: Instant, index: u32, n: usize) -> Result<(), DropReason> {
        let rate = self.config.bps_per_allocation;
        let a = self.slots[index as usize]
            .as_mut()
            .ok_or(DropReason::NoAllocation)?;
        if !a.bucket.take(now, rate, n) || !self.take_total(now, n as u64) {
            return Err(DropReason::Bandwidth);
        }
        Ok(())
    }

    /// Spends `n` bytes of the server-wide budget, leasing a slice of it
    /// when this core's lease runs short.
    fn take_total(&mut self, now: Instant, n: u64) -> bool {
        let budget = &self.shared.bandwidth;
        if budget.rate() == 0 {
            return true;
        }
        if self.total_lease < n {
            let need = n - self.total_lease;
            let slice = (budget.rate() / LEASE_SLICES).max(need);
            let got = budget.take(now, need, slice);
            if got == 0 {
                return false;
            }
            self.total_lease += got;
        }
        self.total_lease -= n;
        true
    }

    // ---- fast path -------------------------------------------------------

    fn on_client(
        &mut self,
        now: Instant,
        client: ClientId,
        data: &[u8],
    ) -> Result<Option<Forward>, DropReason> {
        match data.first() {
            Some(b) if b & 0xc0 == 0x40 => self.channel_data(now, client, data),
            Some(b) if b & 0xc0 == 0 => self.stun_from_client(now, client, data),
            _ => Err(DropReason::Malformed),
        }
    }

    fn channel_data(
        &mut self,
        now: Instant,
        client: ClientId,
        data: &[u8],
    ) -> Result<Option<Forward>, DropReason> {
        let cd = ChannelData::parse(data).ok_or(DropReason::Malformed)?;
        let &index = self
            .by_client
            .get(&client)
            .ok_or(DropReason::NoAllocation)?;
        let a = self.slots[index as usize]
            .as_ref()
            .ok_or(DropReason::NoAllocation)?;
        let ch = a
            .channels
            .iter()
            .find(|c| c.number == cd.channel && c.expires > now)
            .ok_or(DropReason::NoChannel)?;
        let (peer, send_to) = (ch.peer, ch.send_to);
        if a.permission(peer.ip(), now).is_none()
            || (ch.own && !self.shared.relayed_port_live(a.family, peer.port()))
        {
            return Err(DropReason::NoPermission);
        }
        let len = cd.data.len();
        self.spend(now, index, len)?;
        self.stats.c2p_packets += 1;
        self.stats.c2p_bytes += len as u64;
        Ok(Some(Forward {
            dest: Dest::Peer {
                relay: self.id_of(index),
                addr: send_to,
            },
            range: 4..4 + len,
            pad: 0,
        }))
    }

    fn on_peer(
        &mut self,
        now: Instant,
        relay: RelayId,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<Option<Forward>, DropReason> {
        if data.len() < PEER_HEADROOM || data.len() - PEER_HEADROOM > 0xffff {
            return Err(DropReason::Malformed);
        }
        let len = data.len() - PEER_HEADROOM;
        let a = self.get(relay).ok_or(DropReason::NoAllocation)?;
        let mut from = from;
        // From another allocation of ours, sent to its local address:
        // the peer is its advertised address.
        if self.translates
            && let Some(ip) = self.config.policy.advertised_of(from.ip())
            && self.shared.relayed_port_live(a.family, from.port())
        {
            from = SocketAddr::new(ip, from.port());
        }
        match a.permission(from.ip(), now) {
            None => return Err(DropReason::NoPermission),
            Some(p) if p.own && !self.shared.relayed_port_live(a.family, from.port()) => {
                return Err(DropReason::NoPermission);
            }
            Some(_) => {}
        }
        let client = a.client;
        let channel = a
            .channels
            .iter()
            .find(|c| c.peer == from && c.expires > now)
            .map(|c| c.number);
        // The header goes into the headroom in place: ChannelData on a
        // bound channel, otherwise a Data indication.
        let (start, pad) = match channel {
            Some(number) => {
                let start = PEER_HEADROOM - 4;
                data[start..PEER_HEADROOM]
                    .copy_from_slice(&stun::channel_header(number, len as u16));
                (start, 0)
            }
            None => {
                self.tid_counter += 1;
                data_indication(data, from, indication_tid(self.tid_counter))?
            }
        };
        self.spend(now, relay.index, len)?;
        self.stats.p2c_packets += 1;
        self.stats.p2c_bytes += len as u64;
        Ok(Some(Forward {
            dest: Dest::Client(client),
            range: start..data.len(),
            pad,
        }))
    }

    fn send_indication(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
    ) -> Result<Option<Forward>, DropReason> {
        let &index = self
            .by_client
            .get(&client)
            .ok_or(DropReason::NoAllocation)?;
        let peer = msg
            .get_xor_addr(attr::XOR_PEER_ADDRESS)
            .ok()
            .flatten()
            .ok_or(DropReason::Malformed)?;
        let data = msg.get(attr::DATA).ok_or(DropReason::Malformed)?;
        let a = self.slots[index as usize]
            .as_ref()
            .ok_or(DropReason::NoAllocation)?;
        // An indication cannot be answered with 420: one we cannot act on
        // as asked is discarded. DF is a socket option here, so only an
        // allocation made with DONT-FRAGMENT can honour it per datagram.
        let unknown = msg.attributes_before_integrity().any(|at| {
            at.kind < 0x8000
                && (!KNOWN_REQUIRED.contains(&at.kind)
                    || (at.kind == attr::DONT_FRAGMENT && !a.dont_fragment))
        });
        if unknown {
            return Err(DropReason::UnknownAttribute);
        }
        let own = a
            .permission(peer.ip(), now)
            .ok_or(DropReason::NoPermission)?
            .own;
        // Our own relayed address: only another allocation's port, and
        // sent to it locally.
        let send_to = if own {
            if !self.shared.relayed_port_live(a.family, peer.port()) {
                return Err(DropReason::NoPermission);
            }
            self.config.policy.local_of(peer)
        } else {
            peer
        };
        let len = data.value.len();
        self.spend(now, index, len)?;
        self.stats.c2p_packets += 1;
        self.stats.c2p_bytes += len as u64;
        let start = data.offset + 4;
        Ok(Some(Forward {
            dest: Dest::Peer {
                relay: self.id_of(index),
                addr: send_to,
            },
            range: start..start + len,
            pad: 0,
        }))
    }

    // ---- control path ----------------------------------------------------

    fn stun_from_client(
        &mut self,
        now: Instant,
        client: ClientId,
        data: &[u8],
    ) -> Result<Option<Forward>, DropReason> {
        let msg = Message::parse(data).map_err(|_| DropReason::Malformed)?;
        if msg.fingerprint_ok() == Some(false) {
            return Err(DropReason::Malformed);
        }
        match (msg.class, msg.method) {
            (Class::Indication, method::SEND) => self.send_indication(now, client, &msg),
            (Class::Request, _) => {
                self.request(now, client, &msg)?;
                Ok(None)
            }
            _ => Err(DropReason::Unexpected),
        }
    }

    fn rate_ok(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = u64::from(self.config.unauth_per_ip_per_s);
        if rate == 0 {
            return true;
        }
        let b = self.unauth.bucket(rate_key(ip), now, rate);
        let dt = now.saturating_duration_since(b.last);
        let add = (dt.as_millis() as u64).saturating_mul(rate) / 1000;
        if add > 0 {
            b.tokens = (b.tokens + add).min(2 * rate);
            b.last = now;
        }
        if b.tokens > 0 {
            b.tokens -= 1;
            true
        } else {
            false
        }
    }

    /// An unauthenticated error answer, with FINGERPRINT only if the
    /// request had one. Its size is fixed (about 90 bytes with a 401
    /// challenge and a short realm), not proportional to the request: a
    /// bare 20-byte request gets over 4x back, so reflection is bounded by
    /// the per-IP rate limit ([`Config::unauth_per_ip_per_s`]).
    fn reply_plain(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
        (code, reason): Reject,
        with_nonce: bool,
    ) {
        let mut b = Builder::new(msg.method, Class::Error, msg.transaction_id);
        b.error(code, reason);
        if with_nonce {
            let (realm, secs, ip) = (&self.config.realm, self.secs(now), client.remote.ip());
            self.shared.nonces.challenge(&mut b, realm, secs, ip);
        }
        let out = if msg.fingerprint_ok().is_some() {
            b.finish_with_fingerprint()
        } else {
            b.finish()
        };
        self.queue(Dest::Client(client), out);
    }

    fn request(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
    ) -> Result<(), DropReason> {
        let has_integrity = msg.get(attr::MESSAGE_INTEGRITY).is_some()
            || msg.get(attr::MESSAGE_INTEGRITY_SHA256).is_some();
        if msg.method == method::BINDING && !has_integrity {
            if !self.rate_ok(now, client.remote.ip()) {
                return Err(DropReason::RateLimited);
            }
            let mut b = Builder::new(method::BINDING, Class::Success, msg.transaction_id);
            b.xor_addr(attr::XOR_MAPPED_ADDRESS, client.remote);
            self.queue(Dest::Client(client), b.finish_with_fingerprint());
            return Ok(());
        }
        if !has_integrity {
            if !self.rate_ok(now, client.remote.ip()) {
                return Err(DropReason::RateLimited);
            }
            self.reply_plain(now, client, msg, (401, ""), true);
            return Ok(());
        }
        let auth = match self.authenticate(now, client, msg) {
            Ok(a) => a,
            Err((code, reason)) => {
                if !self.rate_ok(now, client.remote.ip()) {
                    return Err(DropReason::RateLimited);
                }
                if code == 401 {
                    self.stats.auth_failures += 1;
                }
                self.reply_plain(now, client, msg, (code, reason), matches!(code, 401 | 438));
                return Ok(());
            }
        };
        // Attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5).
        let unknown: Vec<u16> = msg
            .attributes_before_integrity()
            .map(|a| a.kind)
            .filter(|k| *k < 0x8000 && !KNOWN_REQUIRED.contains(k))
            .take(8)
            .collect();
        let result = if !unknown.is_empty() {
            let v: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
            let mut b = Builder::new(msg.method, Class::Error, msg.transaction_id);
            b.error(420, "Unknown Attribute")
                .attr(attr::UNKNOWN_ATTRIBUTES, &v);
            Err(b)
        } else {
            match msg.method {
                method::ALLOCATE => self.allocate(now, client, msg, &auth),
                method::REFRESH => self.refresh(now, client, msg, &auth),
                method::CREATE_PERMISSION => self.create_permission(now, client, msg, &auth),
                method::CHANNEL_BIND => self.channel_bind(now, client, msg, &auth),
                method::BINDING => {
                    let mut b = Builder::new(method::BINDING, Class::Success, msg.transaction_id);
                    b.xor_addr(attr::XOR_MAPPED_ADDRESS, client.remote);
                    Ok(Some(b))
                }
                _ => Err(error(msg, (400, "Bad Request"))),
            }
        };
        let builder = match result {
            Ok(Some(b)) => b,
            Err(b) => {
                tracing::debug!(method = msg.method, user = auth.username, attrs = ?msg.attributes().flatten().map(|a| a.kind).collect::<Vec<_>>(), "request refused");
                b
            }
            Ok(None) => return Ok(()),
        };
        let mut b = builder;
        b.integrity(auth.integrity, &auth.key.0);
        self.queue(Dest::Client(client), b.finish_with_fingerprint());
        Ok(())
    }

    fn authenticate<'m>(
        &self,
        now: Instant,
        client: ClientId,
        msg: &Message<'m>,
    ) -> Result<Auth<'m>, Reject> {
        let verifier = Verifier {
            realm: &self.config.realm,
            credentials: &self.shared.credentials(),
            nonces: &self.shared.nonces,
            nonce_secs: self.secs(now),
            unix: self.unix(now),
        };
        verifier.verify(msg, client.remote.ip())
    }

    /// The allocation of `client`, checked against the request's user.
    fn own_allocation(
        &self,
        client: ClientId,
        msg: &Message<'_>,
        auth: &Auth<'_>,
    ) -> Result<u32, Builder> {
        let &index = self
            .by_client
            .get(&client)
            .ok_or_else(|| error(msg, (437, "Allocation Mismatch")))?;
        let a = self.slots[index as usize]
            .as_ref()
            .ok_or_else(|| error(msg, (437, "Allocation Mismatch")))?;
        if &*a.username != auth.username {
            return Err(error(msg, (441, "Wrong Credentials")));
        }
        if a.relayed.is_none() {
            return Err(error(msg, (437, "Allocation Mismatch")));
        }
        Ok(index)
    }

    /// The lifetime to grant: the one asked for, clamped to
    /// default..=max and to REST credential expiry. A LIFETIME of 0 means
    /// "delete" in a Refresh (`zero_deletes`); in an Allocate it is just
    /// below the minimum, so the default applies (RFC 8656 §7.2).
    fn lifetime(
        &self,
        now: Instant,
        msg: &Message<'_>,
        auth: &Auth<'_>,
        zero_deletes: bool,
    ) -> Duration {
        let asked = msg
            .get_u32(attr::LIFETIME)
            .ok()
            .flatten()
            .map(|s| Duration::from_secs(u64::from(s)));
        let mut life = match asked {
            Some(d) if d.is_zero() && zero_deletes => return d,
            Some(d) => d.clamp(self.config.default_lifetime, self.config.max_lifetime),
            None => self.config.default_lifetime,
        };
        if let Some(exp) = auth.expires_unix {
            life = life.min(Duration::from_secs(exp.saturating_sub(self.unix(now))));
        }
        life
    }

    fn allocate(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
        auth: &Auth<'_>,
    ) -> Result<Option<Builder>, Builder> {
        if let Some(&index) = self.by_client.get(&client) {
            let a = self.slots[index as usize]
                .as_ref()
                .expect("indexed slot is live");
            if a.allocate_tid == msg.transaction_id {
                // A retransmission: answer again, or wait for the bind.
                return match a.relayed {
                    Some(_) => {
                        let out = self.allocate_success(now, index, msg.transaction_id);
                        self.queue(Dest::Client(client), out);
                        Ok(None)
                    }
                    None => Ok(None),
                };
            }
            return Err(error(msg, (437, "Allocation Mismatch")));
        }
        let transport = msg
            .get(attr::REQUESTED_TRANSPORT)
            .ok_or_else(|| error(msg, (400, "Bad Request")))?;
        if transport.value.len() != 4 {
            return Err(error(msg, (400, "Bad Request")));
        }
        if transport.value[0] != 17 {
            return Err(error(msg, (442, "Unsupported Transport Protocol")));
        }

        let even = msg.get(attr::EVEN_PORT);
        let requested = msg.get(attr::REQUESTED_ADDRESS_FAMILY);
        let redeem = msg.get(attr::RESERVATION_TOKEN);
        // RFC 8656 §7.2: asking for one family and for a second one too.
        if requested.is_some() && msg.get(attr::ADDITIONAL_ADDRESS_FAMILY).is_some() {
            return Err(error(msg, (400, "Bad Request")));
        }
        // RFC 8656 §7.2: a token names the port, family included.
        if redeem.is_some() && (even.is_some() || requested.is_some()) {
            return Err(error(msg, (400, "Bad Request")));
        }
        let mut family = match requested {
            None => Family::V4,
            Some(a) if a.value.len() == 4 && a.value[0] == 1 => Family::V4,
            Some(a) if a.value.len() == 4 && a.value[0] == 2 => Family::V6,
            Some(_) => return Err(error(msg, (440, "Address Family not Supported"))),
        };
        let mut reservation = Reservation::None;
        if let Some(t) = redeem {
            let token: [u8; 8] = t
                .value
                .try_into()
                .map_err(|_| error(msg, (400, "Bad Request")))?;
            // The allocation gets the held port, of the family reserved.
            family = match self.shared.redeem(&token, now) {
                Ok(f) => f,
                Err(e) => {
                    // The reservation is gone: an expired one's port is
                    // closed now (its core's sweep will not find it).
                    if e == RedeemError::Expired {
                        self.events.push_back(Event::Unreserve { token });
                    }
                    return Err(error(msg, (508, "Insufficient Capacity")));
                }
            };
            reservation = Reservation::Redeem(token);
        }
        if !self.config.families.contains(&family) {
            self.drop_redeemed(reservation);
            return Err(error(msg, (440, "Address Family not Supported")));
        }
        let reserve_next = even.is_some_and(|e| e.value.first().is_some_and(|b| b & 0x80 != 0));
        let even_port = even.is_some();
        // Never zero: expired REST credentials fail authentication.
        let life = self.lifetime(now, msg, auth, false);
        let quota_user = auth.quota_user();
        if !self.shared.quotas.acquire(quota_user) {
            self.drop_redeemed(reservation);
            return Err(error(msg, (486, "Allocation Quota Reached")));
        }
        let mut token = None;
        if reserve_next {
            // The odd port is held outside this allocation, so it takes a
            // quota slot of its own until redeemed or expired.
            match self.shared.reserve(now, family, quota_user) {
                Ok(t) => {
                    self.reservations.push_back((now + RESERVATION_LIFETIME, t));
                    reservation = Reservation::ReserveNext(t);
                    token = Some(t);
                }
                Err(e) => {
                    self.shared.quotas.release(quota_user);
                    return Err(error(
                        msg,
                        match e {
                            ReserveError::Quota => (486, "Allocation Quota Reached"),
                            ReserveError::Capacity => (508, "Insufficient Capacity"),
                        },
                    ));
                }
            }
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let dont_fragment = msg.get(attr::DONT_FRAGMENT).is_some();
        let generation = self.generations[index as usize].wrapping_add(1);
        self.generations[index as usize] = generation;
        self.slots[index as usize] = Some(Allocation {
            client,
            generation,
            relayed: None,
            family,
            username: auth.username.into(),
            quota_user: auth.quota_user().into(),
            key: auth.key.clone(),
            integrity: auth.integrity,
            allocate_tid: msg.transaction_id,
            token,
            expires: now + life,
            creds_expire_unix: auth.expires_unix,
            permissions: Vec::new(),
            channels: Vec::new(),
            bucket: Bucket::full(self.config.bps_per_allocation, now),
            dont_fragment,
        });
        self.by_client.insert(client, index);
        self.live += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP);
        }
        self.events.push_back(Event::BindRelay {
            relay: RelayId { index, generation },
            family,
            even_port,
            reservation,
            dont_fragment,
        });
        Ok(None)
    }

    /// A redeemed token whose allocation was refused: its port is closed.
    fn drop_redeemed(&mut self, reservation: Reservation) {
        if let Reservation::Redeem(token) = reservation {
            self.events.push_back(Event::Unreserve { token });
        }
    }

    fn allocate_success(&self, now: Instant, index: u32, tid: [u8; 12]) -> Vec<u8> {
        let a = self.slots[index as usize]
            .as_ref()
            .expect("live allocation");
        let life = a.expires.saturating_duration_since(now).as_secs() as u32;
        let mut b = Builder::new(method::ALLOCATE, Class::Success, tid);
        b.xor_addr(attr::XOR_RELAYED_ADDRESS, a.relayed.expect("bound"))
            .u32(attr::LIFETIME, life)
            .xor_addr(attr::XOR_MAPPED_ADDRESS, a.client.remote);
        if let Some(t) = a.token {
            b.attr(attr::RESERVATION_TOKEN, &t);
        }
        b.integrity(a.integrity, &a.key.0);
        b.finish_with_fingerprint()
    }

    fn refresh(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
        auth: &Auth<'_>,
    ) -> Result<Option<Builder>, Builder> {
        let index = self.own_allocation(client, msg, auth)?;
        let life = self.lifetime(now, msg, auth, true);
        if life.is_zero() {
            self.remove(index);
        } else {
            let a = self.slots[index as usize].as_mut().expect("owned");
            a.expires = now + life;
            a.creds_expire_unix = auth.expires_unix;
        }
        let mut b = Builder::new(method::REFRESH, Class::Success, msg.transaction_id);
        b.u32(attr::LIFETIME, life.as_secs() as u32);
        Ok(Some(b))
    }

    /// Checks a peer address against family and policy. `Ok(true)` for
    /// one of our own relayed addresses, whose ports are reachable only
    /// while they are live allocations' ([`Verdict::RelayedPortsOnly`]).
    fn check_peer(
        &mut self,
        index: u32,
        msg: &Message<'_>,
        peer: SocketAddr,
    ) -> Result<bool, Builder> {
        let a = self.slots[index as usize].as_ref().expect("owned");
        // An IPv4-mapped address is IPv6 by its encoding and IPv4 by what
        // it reaches: of the other family for either allocation.
        let mapped = matches!(peer.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        if Family::of(peer.ip()) != a.family || mapped {
            return Err(error(msg, (443, "Peer Address Family Mismatch")));
        }
        match self.config.policy.verdict(peer.ip()) {
            Verdict::Allowed => Ok(false),
            Verdict::RelayedPortsOnly => Ok(true),
            Verdict::Refused => {
                self.stats.denied_peers += 1;
                Err(error(msg, (403, "Forbidden")))
            }
        }
    }

    /// Whether permissions for `ips` fit in the allocation: those it does
    /// not hold yet, with the live ones, at most `max_permissions`.
    fn permissions_fit(&self, now: Instant, index: u32, ips: &[IpAddr]) -> bool {
        let a = self.slots[index as usize].as_ref().expect("owned");
        let live = a.permissions.iter().filter(|p| p.expires > now).count();
        let new = ips
            .iter()
            .enumerate()
            .filter(|&(i, ip)| !ips[..i].contains(ip) && a.permission(*ip, now).is_none())
            .count();
        live + new <= self.config.max_permissions
    }

    /// Installs or refreshes a permission; the caller checked that it fits
    /// ([`Relay::permissions_fit`]).
    fn permit(&mut self, now: Instant, index: u32, ip: IpAddr, own: bool) {
        let until = now + self.config.permission_lifetime;
        let a = self.slots[index as usize].as_mut().expect("owned");
        a.permissions.retain(|p| p.expires > now);
        match a.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => {
                p.expires = until;
                p.own = own;
            }
            None => a.permissions.push(Permission {
                ip,
                expires: until,
                own,
            }),
        }
    }

    fn create_permission(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
        auth: &Auth<'_>,
    ) -> Result<Option<Builder>, Builder> {
        let index = self.own_allocation(client, msg, auth)?;
        const MAX: usize = 8;
        let mut ips = [IpAddr::from([0, 0, 0, 0]); MAX];
        let mut own = [false; MAX];
        let mut n = 0;
        // Only what MESSAGE-INTEGRITY covers: an attacker on the path
        // must not add peers to a signed request (RFC 8489 §14.5).
        for a in msg
            .attributes_before_integrity()
            .filter(|a| a.kind == attr::XOR_PEER_ADDRESS)
        {
            let peer = stun::decode_xor_addr(a.value, &msg.transaction_id)
                .ok_or_else(|| error(msg, (400, "Bad Request")))?;
            if n == MAX {
                return Err(error(msg, (508, "Insufficient Capacity")));
            }
            own[n] = self.check_peer(index, msg, peer)?;
            ips[n] = peer.ip();
            n += 1;
        }
        if n == 0 {
            return Err(error(msg, (400, "Bad Request")));
        }
        // All or nothing: no permission is installed by a request that fails.
        if !self.permissions_fit(now, index, &ips[..n]) {
            return Err(error(msg, (508, "Insufficient Capacity")));
        }
        for i in 0..n {
            self.permit(now, index, ips[i], own[i]);
        }
        Ok(Some(Builder::new(
            method::CREATE_PERMISSION,
            Class::Success,
            msg.transaction_id,
        )))
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
        auth: &Auth<'_>,
    ) -> Result<Option<Builder>, Builder> {
        let index = self.own_allocation(client, msg, auth)?;
        let bad = || error(msg, (400, "Bad Request"));
        let number = msg.get(attr::CHANNEL_NUMBER).ok_or_else(bad)?;
        if number.value.len() != 4 {
            return Err(bad());
        }
        let number = u16::from_be_bytes([number.value[0], number.value[1]]);
        // RFC 8656 narrowed channels to 0x4000..=0x4FFF, but RFC 5766 clients
        // (coturn's among them) still pick from 0x4000..=0x7FFF; both frame
        // the same way, so accept the older range.
        if !(0x4000..=0x7fff).contains(&number) {
            return Err(bad());
        }
        let peer = msg
            .get_xor_addr(attr::XOR_PEER_ADDRESS)
            .map_err(|_| bad())?
            .ok_or_else(bad)?;
        let own = self.check_peer(index, msg, peer)?;
        let family = self.slots[index as usize].as_ref().expect("owned").family;
        // Our own relayed address: another allocation's port only, never
        // a listener or another service of this host.
        if own && !self.shared.relayed_port_live(family, peer.port()) {
            self.stats.denied_peers += 1;
            return Err(error(msg, (403, "Forbidden")));
        }
        let send_to = if own {
            self.config.policy.local_of(peer)
        } else {
            peer
        };
        let until = now + self.config.channel_lifetime;
        let max = self.config.max_channels;
        let a = self.slots[index as usize].as_ref().expect("owned");
        let by_number = a.channels.iter().position(|c| c.number == number);
        let by_peer = a.channels.iter().position(|c| c.peer == peer);
        let refresh = match (by_number, by_peer) {
            (Some(i), Some(j)) if i == j => Some(i),
            (None, None) if a.channels.len() < max => None,
            (None, None) => return Err(error(msg, (508, "Insufficient Capacity"))),
            _ => return Err(bad()),
        };
        // All or nothing: the permission must fit before the channel is made.
        if !self.permissions_fit(now, index, &[peer.ip()]) {
            return Err(error(msg, (508, "Insufficient Capacity")));
        }
        let a = self.slots[index as usize].as_mut().expect("owned");
        match refresh {
            Some(i) => a.channels[i].expires = until,
            None => a.channels.push(Channel {
                number,
                peer,
                send_to,
                own,
                expires: until,
            }),
        }
        self.permit(now, index, peer.ip(), own);
        Ok(Some(Builder::new(
            method::CHANNEL_BIND,
            Class::Success,
            msg.transaction_id,
        )))
    }
}

fn error(msg: &Message<'_>, (code, reason): Reject) -> Builder {
    let mut b = Builder::new(msg.method, Class::Error, msg.transaction_id);
    b.error(code, reason);
    b
}

/// Transaction ids of Data indications need only vary (indications are
/// never retransmitted or matched, RFC 8489 §6), so a counter will do.
/// Writes a Data indication (RFC 8656 §11.4: XOR-PEER-ADDRESS, then DATA)
/// into the headroom before the payload at `data[PEER_HEADROOM..]`, so the
/// peer-to-client path allocates nothing. Returns where the message starts
/// and how many zero bytes of padding must follow the payload.
fn data_indication(
    data: &mut [u8],
    from: SocketAddr,
    tid: [u8; 12],
) -> Result<(usize, usize), DropReason> {
    let len = data.len() - PEER_HEADROOM;
    let pad = (4 - len % 4) % 4;
    let (addr, addr_len) = stun::xor_addr_value(from, &tid);
    let attrs = 4 + addr_len + 4;
    let body = u16::try_from(attrs + len + pad).map_err(|_| DropReason::Malformed)?;
    let start = PEER_HEADROOM - stun::HEADER_LEN - attrs;
    let h = &mut data[start..PEER_HEADROOM];
    h[..2].copy_from_slice(&stun::message_type(method::DATA, Class::Indication).to_be_bytes());
    h[2..4].copy_from_slice(&body.to_be_bytes());
    h[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
    h[8..20].copy_from_slice(&tid);
    let a = &mut h[stun::HEADER_LEN..];
    a[..2].copy_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
    a[2..4].copy_from_slice(&(addr_len as u16).to_be_bytes());
    a[4..4 + addr_len].copy_from_slice(&addr[..addr_len]);
    let d = &mut a[4 + addr_len..];
    d[..2].copy_from_slice(&attr::DATA.to_be_bytes());
    d[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    Ok((start, pad))
}

fn indication_tid(counter: u64) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(b"SOTD");
    t[4..].copy_from_slice(&counter.to_be_bytes());
    t
}

#[cfg(test)]
mod tests;
