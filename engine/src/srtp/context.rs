//! The SRTP/SRTCP context of one direction: per-SSRC stream state, replay
//! windows, key-lifetime accounting and statistics.

use std::collections::{HashMap, HashSet, VecDeque};

use super::crypto::{RTCP_HEADER, SessionKeys};
use super::header::{RtpHeader, rtcp_ssrc};
use super::index::{INDEX_LIMIT, estimate};
use super::replay::{MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW, ReplayWindow};
use super::{Error, PacketKind, Profile};

/// SRTCP replay window in packets. libsrtp2 keeps a fixed 128-packet SRTCP
/// window whatever the SRTP one; the same size makes the two accept and
/// refuse the same reordered SRTCP packets.
pub const SRTCP_REPLAY_WINDOW: usize = 128;

/// Most SSRCs one context retires with [`SrtpContext::remove_stream`]; a
/// bound on memory (4 bytes each) however many streams a peer ends.
pub const MAX_RETIRED_STREAMS: usize = 1024;

/// Largest [`Config::max_packet_len`]: 2^20 bytes, the 2^16 AES blocks of
/// keystream each packet index gets in AES-CM (RFC 3711 §4.1.1).
pub const MAX_PACKET_LEN: usize = 1 << 20;

/// Tunables of a context. [`Config::default`] suits a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// SRTP replay window in packets (64, the RFC 3711 minimum and the
    /// default, to 32768), rounded up to a multiple of 32 as libsrtp2 does.
    /// SRTCP always has a window of [`SRTCP_REPLAY_WINDOW`].
    pub replay_window: usize,
    /// Most SSRCs tracked at once; a packet of a further SSRC is dropped
    /// with [`Error::TooManyStreams`] (default 32).
    pub max_streams: usize,
    /// Longest packet accepted, in bytes, protected or not (default 9216,
    /// a jumbo frame; at most [`MAX_PACKET_LEN`]).
    pub max_packet_len: usize,
    /// SRTP packets one master key may process (default and maximum 2^48,
    /// RFC 3711 §9.2).
    pub srtp_key_limit: u64,
    /// SRTCP packets one master key may process (default and maximum 2^31).
    pub srtcp_key_limit: u64,
    /// [`Event::RekeyNeeded`] is raised this many packets before a limit
    /// (default 2^16), so that a new key can be agreed in time.
    pub rekey_margin: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            replay_window: 64,
            max_streams: 32,
            max_packet_len: 9216,
            srtp_key_limit: 1 << 48,
            srtcp_key_limit: 1 << 31,
            rekey_margin: 1 << 16,
        }
    }
}

/// Something the owner of a context should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The master key is close to (or at) its packet limit for this kind:
    /// agree a new key (ZRTP re-key) and build a new context.
    RekeyNeeded(PacketKind),
}

/// Counters of a context, for call statistics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// SRTP packets protected.
    pub rtp_protected: u64,
    /// SRTP packets unprotected (authenticated and decrypted).
    pub rtp_unprotected: u64,
    /// SRTCP packets protected.
    pub rtcp_protected: u64,
    /// SRTCP packets unprotected.
    pub rtcp_unprotected: u64,
    /// Packets whose tag did not verify.
    pub auth_failures: u64,
    /// Packets rejected as replayed or older than the window (and, when
    /// protecting, an index that was already used).
    pub replays: u64,
    /// Packets that were truncated, malformed, oversized, not version 2, or
    /// had no room for the trailer.
    pub malformed: u64,
    /// Packets of a new SSRC dropped at the stream limit.
    pub stream_limit_drops: u64,
    /// Packets refused because the key reached its lifetime limit.
    pub key_limit_drops: u64,
}

/// State kept per SSRC.
struct Stream {
    rtp: ReplayWindow,
    rtcp: ReplayWindow,
    /// Next SRTCP index to send; like libsrtp the first one is 1.
    rtcp_next: u32,
}

/// An SRTP/SRTCP context for one direction (all outbound or all inbound
/// streams) keyed with one master key and salt. See the [module
/// docs](super) for an example.
pub struct SrtpContext {
    profile: Profile,
    keys: SessionKeys,
    config: Config,
    streams: HashMap<u32, Stream>,
    /// SSRCs whose state was removed: their indices were used under this
    /// key, so they may not start over (keystream reuse, replays).
    retired: HashSet<u32>,
    stats: Stats,
    events: VecDeque<Event>,
    /// Packets processed under the master key, SRTP and SRTCP.
    used: [u64; 2],
    /// Whether `RekeyNeeded` was already raised, SRTP and SRTCP.
    warned: [bool; 2],
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are deliberately left out.
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.streams.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context for `profile` keyed with `master_key` and `master_salt`
    /// (as ZRTP or DTLS-SRTP export them), with the default [`Config`].
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Result<Self, Error> {
        Self::with_config(profile, master_key, master_salt, Config::default())
    }

    /// Like [`SrtpContext::new`], with explicit tunables.
    pub fn with_config(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        config: Config,
    ) -> Result<Self, Error> {
        if master_key.len() != profile.key_len() {
            return Err(Error::KeyLength {
                expected: profile.key_len(),
                got: master_key.len(),
            });
        }
        if master_salt.len() != profile.salt_len() {
            return Err(Error::SaltLength {
                expected: profile.salt_len(),
                got: master_salt.len(),
            });
        }
        if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&config.replay_window) {
            return Err(Error::Config("replay window must be 64..=32768 packets"));
        }
        // AES-CM gives each index 2^16 keystream blocks (RFC 3711 §4.1.1):
        // a longer packet would encrypt with the next index's keystream.
        if config.max_packet_len > MAX_PACKET_LEN {
            return Err(Error::Config("max_packet_len may not exceed 2^20 bytes"));
        }
        // RFC 3711 §9.2: these are the most one master key may protect.
        if config.srtp_key_limit > INDEX_LIMIT || config.srtcp_key_limit > 1 << 31 {
            return Err(Error::Config(
                "key limits may not exceed 2^48 SRTP and 2^31 SRTCP packets",
            ));
        }
        if config.max_streams == 0 {
            return Err(Error::Config("max_streams must be at least 1"));
        }
        Ok(SrtpContext {
            profile,
            keys: SessionKeys::derive(profile, master_key, master_salt),
            config,
            streams: HashMap::new(),
            retired: HashSet::new(),
            stats: Stats::default(),
            events: VecDeque::new(),
            used: [0; 2],
            warned: [false; 2],
        })
    }

    /// The context's profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next pending event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Forgets the state of `ssrc` (e.g. on an RTCP BYE), freeing its slot;
    /// returns whether it did. The SSRC stays retired for the life of the
    /// context, since its indices were used under this key: protecting for
    /// it again fails with [`Error::RekeyNeeded`] (it would reuse
    /// keystream), unprotecting with [`Error::Replayed`]. Once
    /// [`MAX_RETIRED_STREAMS`] are retired, streams are kept and `false`
    /// returned.
    pub fn remove_stream(&mut self, ssrc: u32) -> bool {
        if !self.streams.contains_key(&ssrc) || self.retired.len() >= MAX_RETIRED_STREAMS {
            return false;
        }
        self.streams.remove(&ssrc);
        self.retired.insert(ssrc);
        true
    }

    /// Protects the RTP packet in `packet` in place, appending the tag.
    /// Does not allocate when `packet` has capacity for
    /// [`Profile::rtp_tag_len`] more bytes. On error `packet` is unchanged.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        let len = packet.len();
        packet.resize(len + self.profile.rtp_tag_len(), 0);
        let result = self.protect_rtp_in_place(packet, len);
        packet.truncate(*result.as_ref().unwrap_or(&len));
        result.map(|_| ())
    }

    /// Protects the RTP packet `buf[..len]` in place; `buf` must have room
    /// for the tag after it. Returns the SRTP packet length.
    pub fn protect_rtp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let result = self.protect_rtp_inner(buf, len);
        self.count(result, PacketKind::Rtp, true)
    }

    /// Authenticates and decrypts the SRTP packet in `packet` in place,
    /// leaving the RTP packet. Never allocates. On error the content of
    /// `packet` is unspecified (GCM decrypts before it can reject).
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        let len = packet.len();
        let plain = self.unprotect_rtp_in_place(packet, len)?;
        packet.truncate(plain);
        Ok(())
    }

    /// Unprotects the SRTP packet `buf[..len]` in place; returns the RTP
    /// packet length.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let result = self.unprotect_rtp_inner(buf, len);
        self.count(result, PacketKind::Rtp, false)
    }

    /// Protects the RTCP (compound) packet in `packet` in place, appending
    /// E flag, SRTCP index and tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        let len = packet.len();
        packet.resize(len + self.profile.rtcp_overhead(), 0);
        let result = self.protect_rtcp_in_place(packet, len);
        packet.truncate(*result.as_ref().unwrap_or(&len));
        result.map(|_| ())
    }

    /// Protects the RTCP packet `buf[..len]` in place; `buf` must have room
    /// for [`Profile::rtcp_overhead`] more bytes. Returns the SRTCP length.
    pub fn protect_rtcp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let result = self.protect_rtcp_inner(buf, len);
        self.count(result, PacketKind::Rtcp, true)
    }

    /// Authenticates and (if its E flag is set) decrypts the SRTCP packet in
    /// `packet` in place, leaving the RTCP packet.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        let len = packet.len();
        let plain = self.unprotect_rtcp_in_place(packet, len)?;
        packet.truncate(plain);
        Ok(())
    }

    /// Unprotects the SRTCP packet `buf[..len]` in place; returns the RTCP
    /// packet length.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let result = self.unprotect_rtcp_inner(buf, len);
        self.count(result, PacketKind::Rtcp, false)
    }

    fn protect_rtp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let tag = self.profile.rtp_tag_len();
        self.check_sizes(buf, len, tag)?;
        let hdr = RtpHeader::parse(buf, len)?;
        self.check_key_use(PacketKind::Rtp)?;
        if self.retired.contains(&hdr.ssrc) {
            return Err(Error::RekeyNeeded(PacketKind::Rtp));
        }
        let stream = stream_slot(&mut self.streams, &self.config, hdr.ssrc)?;
        let index = estimate(stream.rtp.top(), hdr.seq);
        if index >= INDEX_LIMIT {
            return Err(Error::RekeyNeeded(PacketKind::Rtp));
        }
        // Never encrypt twice under one index: that would reuse keystream.
        stream.rtp.check(index)?;
        stream.rtp.accept(index);
        Ok(self.keys.protect_rtp(buf, hdr.len, len, hdr.ssrc, index))
    }

    fn unprotect_rtp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        self.check_sizes(buf, len, 0)?;
        let packet = &mut buf[..len];
        let tag = self.profile.rtp_tag_len();
        let body = len.checked_sub(tag).ok_or(Error::Malformed)?;
        let hdr = RtpHeader::parse(packet, body)?;
        self.check_key_use(PacketKind::Rtp)?;
        if self.retired.contains(&hdr.ssrc) {
            return Err(Error::Replayed);
        }
        let known = self.streams.get(&hdr.ssrc);
        if known.is_none() && self.streams.len() >= self.config.max_streams {
            return Err(Error::TooManyStreams);
        }
        let index = estimate(known.and_then(|s| s.rtp.top()), hdr.seq);
        if index >= INDEX_LIMIT {
            return Err(Error::RekeyNeeded(PacketKind::Rtp));
        }
        if let Some(stream) = known {
            stream.rtp.check(index)?;
        }
        let plain = self.keys.unprotect_rtp(packet, hdr.len, hdr.ssrc, index)?;
        // Authenticated: only now may the packet change any state.
        let stream = stream_slot(&mut self.streams, &self.config, hdr.ssrc)?;
        stream.rtp.accept(index);
        Ok(plain)
    }

    fn protect_rtcp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        self.check_sizes(buf, len, self.profile.rtcp_overhead())?;
        let ssrc = rtcp_ssrc(&buf[..len])?;
        self.check_key_use(PacketKind::Rtcp)?;
        if self.retired.contains(&ssrc) {
            return Err(Error::RekeyNeeded(PacketKind::Rtcp));
        }
        let stream = stream_slot(&mut self.streams, &self.config, ssrc)?;
        let index = stream.rtcp_next;
        if index > 0x7fff_ffff {
            return Err(Error::RekeyNeeded(PacketKind::Rtcp));
        }
        stream.rtcp_next += 1;
        Ok(self.keys.protect_rtcp(buf, len, ssrc, index))
    }

    fn unprotect_rtcp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        self.check_sizes(buf, len, 0)?;
        let packet = &mut buf[..len];
        if len < RTCP_HEADER + self.profile.rtcp_overhead() {
            return Err(Error::Malformed);
        }
        let ssrc = rtcp_ssrc(packet)?;
        self.check_key_use(PacketKind::Rtcp)?;
        if self.retired.contains(&ssrc) {
            return Err(Error::Replayed);
        }
        let known = self.streams.get(&ssrc);
        if known.is_none() && self.streams.len() >= self.config.max_streams {
            return Err(Error::TooManyStreams);
        }
        let (_, index) = self.keys.rtcp_trailer(packet);
        if let Some(stream) = known {
            stream.rtcp.check(u64::from(index))?;
        }
        let plain = self.keys.unprotect_rtcp(packet, ssrc)?;
        let stream = stream_slot(&mut self.streams, &self.config, ssrc)?;
        stream.rtcp.accept(u64::from(index));
        Ok(plain)
    }

    /// Rejects packets over the size limit and buffers without room for
    /// `trailer` bytes after the packet.
    fn check_sizes(&self, buf: &[u8], len: usize, trailer: usize) -> Result<(), Error> {
        if len > self.config.max_packet_len {
            return Err(Error::Oversized(len));
        }
        if buf.len() < len + trailer {
            return Err(Error::BufferTooSmall {
                needed: len + trailer - buf.len().min(len + trailer),
            });
        }
        Ok(())
    }

    fn check_key_use(&self, kind: PacketKind) -> Result<(), Error> {
        if self.used[kind as usize] >= self.limit(kind) {
            return Err(Error::RekeyNeeded(kind));
        }
        Ok(())
    }

    fn limit(&self, kind: PacketKind) -> u64 {
        match kind {
            PacketKind::Rtp => self.config.srtp_key_limit,
            PacketKind::Rtcp => self.config.srtcp_key_limit,
        }
    }

    /// Counts the outcome of one packet and raises `RekeyNeeded` once when
    /// the key nears its limit.
    fn count(
        &mut self,
        result: Result<usize, Error>,
        kind: PacketKind,
        protect: bool,
    ) -> Result<usize, Error> {
        let s = &mut self.stats;
        match result {
            Ok(_) => {
                *match (kind, protect) {
                    (PacketKind::Rtp, true) => &mut s.rtp_protected,
                    (PacketKind::Rtp, false) => &mut s.rtp_unprotected,
                    (PacketKind::Rtcp, true) => &mut s.rtcp_protected,
                    (PacketKind::Rtcp, false) => &mut s.rtcp_unprotected,
                } += 1;
                let k = kind as usize;
                self.used[k] += 1;
                let warn_at = self.limit(kind).saturating_sub(self.config.rekey_margin);
                if !self.warned[k] && self.used[k] >= warn_at {
                    self.warned[k] = true;
                    self.events.push_back(Event::RekeyNeeded(kind));
                }
            }
            Err(e) => {
                *match e {
                    Error::AuthFailed => &mut s.auth_failures,
                    Error::Replayed | Error::TooOld => &mut s.replays,
                    Error::TooManyStreams => &mut s.stream_limit_drops,
                    Error::RekeyNeeded(_) => &mut s.key_limit_drops,
                    _ => &mut s.malformed,
                } += 1;
                if matches!(e, Error::RekeyNeeded(_)) && !self.warned[kind as usize] {
                    self.warned[kind as usize] = true;
                    self.events.push_back(Event::RekeyNeeded(kind));
                }
            }
        }
        result
    }
}

/// The stream of `ssrc`, created if there is room.
fn stream_slot<'a>(
    streams: &'a mut HashMap<u32, Stream>,
    config: &Config,
    ssrc: u32,
) -> Result<&'a mut Stream, Error> {
    if !streams.contains_key(&ssrc) && streams.len() >= config.max_streams {
        return Err(Error::TooManyStreams);
    }
    Ok(streams.entry(ssrc).or_insert_with(|| Stream {
        // libsrtp2 keeps the window in whole 32-bit words: round the same
        // way so both accept the same late packets.
        rtp: ReplayWindow::new(config.replay_window.next_multiple_of(32)),
        rtcp: ReplayWindow::new(SRTCP_REPLAY_WINDOW),
        rtcp_next: 1,
    }))
}
