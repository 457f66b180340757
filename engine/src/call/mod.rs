//! One call as a sans-IO state machine: signalling messages, ZRTP over the
//! ICE-selected path, SRTP keyed from ZRTP, and the Opus/jitter-buffer
//! audio pipeline.
//!
//! The [`Call`] owns no socket, clock or ICE agent. It talks to its
//! transport (an [`IceSession`](crate::ice::IceSession), driven by
//! [`crate::driver`] or by the [`crate::sim`] simulator) through
//! [`Input::IceSignal`]/[`Input::Ice`]/[`Input::Datagram`] in and
//! [`Transmit::IceSignal`]/[`Transmit::Datagram`] out, and to the peer's
//! call through [`Event::Signal`] out and [`Input::Signal`] in.
//!
//! Flow: the caller [`Call::place`]s the call and sends an
//! [`CallSignal::Offer`] (ICE credentials and candidates, its
//! `zrtp-hash`, codec parameters); the callee rings and, on
//! [`Call::answer`], sends an [`CallSignal::Answer`]. ICE then connects;
//! on the first selected path both start ZRTP (the caller as initiator).
//! Only when ZRTP is Secure is the SRTP audio pipeline built, so no RTP
//! can leave before then.
//!
//! Two calls in the virtual-time simulator ([`crate::sim`]), which runs
//! the same objects the tokio driver does, over a 30 ms link each way:
//!
//! ```
//! use sotto_engine::call::{CallConfig, Event};
//! use sotto_engine::sim::{LinkSchedule, Network, Side, Sim};
//! use std::time::{Duration, Instant};
//!
//! let net = Network::symmetric(LinkSchedule::fixed(Duration::from_millis(30)));
//! let mut sim = Sim::new(Instant::now(), CallConfig::default(), CallConfig::default(), net)?;
//! sim.place()?; // A sends its offer; B rings
//! assert!(sim.run_until(Duration::from_secs(2), |s| s.peer(Side::B).is_ringing()));
//! sim.answer()?; // ICE, then ZRTP, then SRTP audio
//! assert!(sim.run_until(Duration::from_secs(10), |s| s.both_secure()));
//! // Both users read the same short authentication string aloud.
//! assert_eq!(sim.peer(Side::A).sas(), sim.peer(Side::B).sas());
//! let secure_up = |side| {
//!     sim.peer(side)
//!         .events()
//!         .any(|e| matches!(e, Event::SecureUp { .. }))
//! };
//! assert!(secure_up(Side::A) && secure_up(Side::B));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A real call runs the same [`Call`] under [`driver::CallHandle`], which
//! owns the UDP sockets, the clock and an audio port.

pub mod driver;
pub mod echo;
mod fuzz;
pub mod media;
pub mod pacer;
pub mod pump;
pub mod signal;
pub mod stats;
pub mod sync;
mod video;
pub mod wav;

pub use fuzz::fuzz_input;
pub use media::{AudioConfig, MediaError};
pub use signal::{CallSignal, CodecParams, SessionDescription, VideoParams};
pub use stats::{
    CallStats, CandidatePair, InboundRtp, InboundVideo, OutboundRtp, OutboundVideo,
    RemoteInboundRtp, VideoStats,
};

use crate::demux::{PacketKind, classify};
use crate::ice::{IceConfig, IceEvent, IceState, SelectedPath, SignalMessage};
use crate::video::{VideoConfig, VideoFrame};
use crate::zrtp::{self, Endpoint, Failure, HelloHash, Policy, Role, Suite, ZidCache};
use media::Media;
use signal::MAX_CANDIDATES;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Events and transmits kept when the application does not poll them.
const MAX_QUEUE: usize = 1024;
/// After signalling drops an offer it kept for a callee that was not
/// connected, how long a callee that took it at the last moment has to
/// ring back: a round trip through signalling, with room to spare.
const OFFER_GRACE: Duration = Duration::from_secs(2);
/// [`Event::ServerFailed`] reports per call: each link reports a failure
/// once, but ICE restarts make new links.
pub const MAX_SERVER_REPORTS: u8 = 8;

/// How a call behaves.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Our ZID and retained secrets; read back with [`Call::zid_cache`].
    pub zid_cache: ZidCache,
    /// ZRTP algorithms offered and accepted.
    pub zrtp_policy: Policy,
    /// Codec and jitter buffer settings.
    pub audio: AudioConfig,
    /// Video settings; `None` for an audio-only call. Video flows when
    /// both sides set it up (the offer and the answer both carry it).
    pub video: Option<VideoConfig>,
    /// Only ever use a TURN relay (hides our addresses from the peer).
    pub relay_only: bool,
    /// How long an unanswered call rings.
    pub ring_timeout: Duration,
    /// How long from answer to Secure before giving up.
    pub setup_timeout: Duration,
    /// How long a Secure call goes without one authenticated RTP or RTCP
    /// packet from the peer before it ends ([`EndReason::MediaTimeout`]):
    /// a peer that lost power or network never hangs up. A live peer sends
    /// even in silence (DTX comfort noise, RTCP reports).
    pub media_timeout: Duration,
    /// Shortest RTCP report interval (RFC 3550: 5 s); each report is
    /// scheduled at a randomised multiple of the bandwidth-based interval
    /// (RFC 3550 §6.3), never below this. A call with video takes RFC
    /// 3550 §6.2's reduced minimum (360 s over the session's kbit/s,
    /// about 1 s) when that is shorter.
    pub rtcp_interval: Duration,
    /// Interval of [`Event::Stats`].
    pub stats_interval: Duration,
}

impl CallConfig {
    /// Checks the settings: a call is made only from a config that passes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let intervals = [
            ("ring_timeout", self.ring_timeout),
            ("setup_timeout", self.setup_timeout),
            ("media_timeout", self.media_timeout),
            ("stats_interval", self.stats_interval),
        ];
        if let Some((name, _)) = intervals.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Zero(name));
        }
        self.audio.validate()?;
        if let Some(v) = &self.video {
            v.validate().map_err(MediaError::from)?;
        }
        Ok(())
    }
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            zid_cache: ZidCache::new(),
            zrtp_policy: Policy::default(),
            audio: AudioConfig::default(),
            video: None,
            relay_only: false,
            ring_timeout: Duration::from_secs(60),
            setup_timeout: Duration::from_secs(30),
            media_timeout: Duration::from_secs(30),
            rtcp_interval: crate::rtp::RTCP_INTERVAL,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// Something for the call to handle.
#[derive(Debug)]
pub enum Input<'a> {
    /// A message from the peer's call, through signalling.
    Signal(CallSignal),
    /// Our ICE session's credentials or a candidate, to signal to the peer.
    IceSignal(SignalMessage),
    /// An event of our ICE session.
    Ice(IceEvent),
    /// A datagram (ZRTP, RTP or RTCP) that arrived on the selected path.
    Datagram(&'a [u8]),
    /// 10 or 20 ms of microphone PCM, 48 kHz mono.
    Audio(&'a [i16]),
    /// A camera frame (see [`Call::push_video`]).
    Video(&'a VideoFrame),
    /// The transport under the call stopped for good (its driver ended):
    /// the call ends with [`EndReason::ConnectionFailed`].
    TransportClosed,
}

/// Something for the transport to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A datagram to send on the selected path.
    Datagram(Vec<u8>),
    /// The peer's ICE credentials or a candidate, for our ICE session.
    IceSignal(SignalMessage),
}

/// Which kind of path media takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Straight to the peer.
    Direct,
    /// Through a TURN relay.
    Relay,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up.
    LocalHangup,
    /// The peer hung up (or failed on its side).
    RemoteHangup,
    /// We declined the incoming call.
    Declined,
    /// The callee declined.
    RemoteDeclined,
    /// Nobody answered before the ring timeout.
    NoAnswer,
    /// We rejected the SAS.
    SasRejected,
    /// The peer's Hello did not match the signalled zrtp-hash.
    HelloHashMismatch,
    /// ZRTP failed.
    ZrtpFailed(Failure),
    /// The negotiated suite has no SRTP profile.
    NoSrtpProfile,
    /// ICE failed before the call was secure, or the transport under the
    /// call stopped.
    ConnectionFailed,
    /// Not secure within the setup timeout.
    SetupTimeout,
    /// Secure, then nothing authenticated from the peer for the media
    /// timeout: it vanished without hanging up.
    MediaTimeout,
}

/// What the application should know.
#[derive(Debug, Clone)]
pub enum Event {
    /// Send this message to the peer through signalling.
    Signal(CallSignal),
    /// The phone rings: ours (`incoming`), or the callee's.
    Ringing {
        /// Whether this is an incoming call to answer or decline.
        incoming: bool,
    },
    /// ICE selected a path for the first time.
    Connected,
    /// The selected path changed kind (or was first selected).
    PathChanged(PathKind),
    /// ZRTP is Secure; media flows encrypted from now on.
    SecureUp {
        /// The SAS to compare by voice.
        sas: String,
        /// The agreed algorithms.
        algorithms: Suite,
        /// Both sides had verified this peer's SAS before and the cache matched.
        sas_verified: bool,
    },
    /// The retained secrets did not match: the SAS must be compared. The
    /// call's new secret is kept only if it is confirmed
    /// ([`Call::confirm_sas`]), so until then every call with this peer
    /// warns again.
    CacheMismatch,
    /// The peer's Hello did not match the zrtp-hash from signalling.
    HelloHashMismatch,
    /// A STUN or TURN server did not answer or refused us: a relay whose
    /// policy denies the peer's address, wrong TURN credentials. It tells
    /// why a relayed path may not come up; the call goes on. At most
    /// [`MAX_SERVER_REPORTS`] per call.
    ServerFailed {
        /// The server.
        server: SocketAddr,
        /// What it said, or that it did not answer.
        reason: String,
    },
    /// Statistics, every `stats_interval` while connected.
    Stats(Box<CallStats>),
    /// The call is over.
    Ended {
        /// Why.
        reason: EndReason,
    },
}

/// Errors from [`Call`] inputs and controls.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The operation does not fit the call's state.
    #[error("{0} not allowed while {1}")]
    State(&'static str, &'static str),
    /// A signalling message was not acceptable.
    #[error("bad signalling message: {0}")]
    BadSignal(String),
    /// The audio pipeline refused input.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// Why a call could not be made from its [`CallConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The codec, jitter buffer or video settings are out of range.
    #[error("media: {0}")]
    Audio(MediaError),
    /// A timeout or interval that must be longer than zero (a zero one
    /// would end the call at once, or make its timer due at every turn).
    #[error("{0} must be longer than zero")]
    Zero(&'static str),
}

shown_from!(ConfigError, ConfigError::Audio, MediaError);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Calling,
    Incoming,
    Answered,
    Ended,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Calling => "calling",
            State::Incoming => "ringing",
            State::Answered => "answered",
            State::Ended => "ended",
        }
    }
}

/// One call. See the module documentation.
pub struct Call {
    outgoing: bool,
    cfg: CallConfig,
    state: State,
    ssrc: u32,
    zrtp: Option<Endpoint>,
    zrtp_started: bool,
    local_ice: Option<(String, String)>,
    local_cands: Vec<String>,
    described: bool,
    /// [`Event::ServerFailed`] reported so far.
    server_reports: u8,
    remote: Option<SessionDescription>,
    queued_ice: Vec<SignalMessage>,
    path: Option<SelectedPath>,
    media: Option<Media>,
    muted: bool,
    /// The callee has rung (an outgoing call).
    rung: bool,
    /// When the call ends unless something happens first: no answer, not
    /// Secure, or (once Secure) nothing from the peer.
    deadline: Option<Instant>,
    /// When the offer, kept by signalling for a callee that is not
    /// connected, is gone and so can no longer make it ring
    /// ([`Call::offer_queued`]); cleared when it rings.
    offer_gone: Option<Instant>,
    next_stats: Option<Instant>,
    ntp_anchor: (Instant, u64),
    audio_dropped: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("outgoing", &self.outgoing)
            .field("state", &self.state)
            .field("secure", &self.media.is_some())
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call we will place with [`Call::place`]. Refused when its config
    /// does not pass [`CallConfig::validate`].
    pub fn outgoing(now: Instant, cfg: CallConfig) -> Result<Self, ConfigError> {
        Self::new(now, cfg, true)
    }

    /// A call waiting for the peer's [`CallSignal::Offer`]. Refused when its
    /// config does not pass [`CallConfig::validate`].
    pub fn incoming(now: Instant, cfg: CallConfig) -> Result<Self, ConfigError> {
        Self::new(now, cfg, false)
    }

    fn new(now: Instant, cfg: CallConfig, outgoing: bool) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            outgoing,
            cfg,
            state: State::Idle,
            ssrc: u32::from_be_bytes(zrtp::crypto::random()),
            zrtp: None,
            zrtp_started: false,
            local_ice: None,
            local_cands: Vec::new(),
            described: false,
            server_reports: 0,
            remote: None,
            queued_ice: Vec::new(),
            path: None,
            media: None,
            muted: false,
            rung: false,
            deadline: None,
            offer_gone: None,
            next_stats: None,
            // Any fixed mapping works: only our own SR times come back to us.
            ntp_anchor: (now, 1 << 32),
            audio_dropped: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The ICE configuration this call's transport must use: `base` with
    /// our role (the caller controls) and relay-only setting applied. Only
    /// the caller restarts ICE by itself when consent is lost: if both did,
    /// their two restart offers would cross.
    pub fn ice_config(&self, base: IceConfig) -> IceConfig {
        IceConfig {
            controlling: self.outgoing,
            relay_only: base.relay_only || self.cfg.relay_only,
            auto_restart: base.auto_restart && self.outgoing,
            ..base
        }
    }

    /// Whether ZRTP is Secure and media may flow.
    pub fn is_secure(&self) -> bool {
        self.media.is_some()
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// The ZID cache, updated when ZRTP went Secure (after a cache
    /// mismatch, only once the SAS is confirmed); persist it after the call.
    pub fn zid_cache(&self) -> &ZidCache {
        match &self.zrtp {
            Some(ep) => ep.cache(),
            None => &self.cfg.zid_cache,
        }
    }

    /// Audio pushed while it could not be sent (before Secure, after the end).
    pub fn audio_dropped(&self) -> u64 {
        self.audio_dropped
    }

    /// Places the call: the offer goes out once our ICE credentials are known.
    pub fn place(&mut self, now: Instant) -> Result<(), CallError> {
        if !self.outgoing || self.state != State::Idle {
            return Err(CallError::State("place", self.state.name()));
        }
        self.zrtp = Some(self.endpoint(zrtp::Config::new(Role::Initiator)));
        self.state = State::Calling;
        self.deadline = Some(now + self.cfg.ring_timeout);
        self.describe();
        Ok(())
    }

    /// Answers the incoming call: ICE starts and the answer goes out.
    pub fn answer(&mut self, now: Instant) -> Result<(), CallError> {
        if self.outgoing || self.state != State::Incoming {
            return Err(CallError::State("answer", self.state.name()));
        }
        self.state = State::Answered;
        self.deadline = Some(now + self.cfg.setup_timeout);
        if let Some(r) = self.remote.clone() {
            self.feed_remote_ice(&r, false);
        }
        self.describe();
        Ok(())
    }

    /// Declines the incoming call.
    pub fn decline(&mut self, _now: Instant) -> Result<(), CallError> {
        if self.state != State::Incoming {
            return Err(CallError::State("decline", self.state.name()));
        }
        self.signal(CallSignal::Decline);
        self.end(EndReason::Declined);
        Ok(())
    }

    /// Signalling keeps our offer `kept_for` for a callee that is not
    /// connected (waking it by push, if it can), then drops it. A callee
    /// that has not rung by then (and 2 s of grace for a round trip) never will, so the
    /// call ends [`EndReason::NoAnswer`] then instead of ringing on to the
    /// ring timeout. Ignored once the callee has rung.
    pub fn offer_queued(&mut self, now: Instant, kept_for: Duration) -> Result<(), CallError> {
        if !self.outgoing || self.state != State::Calling {
            return Err(CallError::State("offer_queued", self.state.name()));
        }
        // Beyond the ring timeout it changes nothing (and a hostile
        // signalling server's huge figure must not overflow the clock).
        let gone = kept_for.saturating_add(OFFER_GRACE);
        if !self.rung && gone < self.cfg.ring_timeout {
            self.offer_gone = Some(now + gone);
        }
        Ok(())
    }

    /// Hangs up (or cancels an unanswered call).
    pub fn hang_up(&mut self, _now: Instant) {
        self.fail(EndReason::LocalHangup);
    }

    /// Mutes or unmutes the microphone (silence is sent, DTX keeps it cheap).
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The user compared the SAS: a match marks the peer verified in the
    /// ZID cache (after a cache mismatch, it also keeps the call's new
    /// retained secret, held back until now); a mismatch ends the call,
    /// and after a cache mismatch leaves the cache as it was before it.
    pub fn confirm_sas(&mut self, _now: Instant, matches: bool) -> Result<(), CallError> {
        if !self.is_secure() {
            return Err(CallError::State("SAS confirmation", self.state.name()));
        }
        if let Some(ep) = self.zrtp.as_mut() {
            ep.set_sas_verified(matches);
        }
        if !matches {
            self.fail(EndReason::SasRejected);
        }
        Ok(())
    }

    /// Handles one input.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), CallError> {
        match input {
            Input::Signal(s) => self.on_signal(now, s),
            Input::IceSignal(m) => {
                self.on_local_ice(m);
                Ok(())
            }
            Input::Ice(e) => {
                self.on_ice(now, e);
                Ok(())
            }
            Input::Datagram(d) => {
                self.on_datagram(now, d);
                Ok(())
            }
            Input::Audio(pcm) => self.push_audio(now, pcm),
            Input::Video(frame) => self.push_video(now, frame),
            Input::TransportClosed => {
                self.fail(EndReason::ConnectionFailed);
                Ok(())
            }
        }
    }

    /// Takes 10 or 20 ms of microphone PCM (48 kHz mono) captured at `now`.
    /// Dropped (and counted) until the call is Secure.
    pub fn push_audio(&mut self, now: Instant, pcm: &[i16]) -> Result<(), CallError> {
        if pcm.len() != media::PULL_SAMPLES && pcm.len() != media::FRAME_SAMPLES {
            return Err(MediaError::FrameSize(pcm.len()).into());
        }
        match self.media.as_mut() {
            Some(m) if self.state != State::Ended => {
                m.push_audio(now, pcm, self.muted)?;
                self.flush_media();
            }
            _ => self.audio_dropped += 1,
        }
        Ok(())
    }

    /// Takes a camera frame captured at `now` (any even size; a new size
    /// starts a new key frame). Dropped until the call is Secure, and in a
    /// call without video (see [`Call::has_video`]).
    pub fn push_video(&mut self, now: Instant, frame: &VideoFrame) -> Result<(), CallError> {
        if let Some(m) = self.media.as_mut()
            && self.state != State::Ended
            && m.push_video(now, frame)?
        {
            self.flush_media();
        }
        Ok(())
    }

    /// The oldest received video frame not yet taken. A few are kept; an
    /// application that falls behind loses the oldest (counted in
    /// `framesDropped`).
    pub fn poll_video(&mut self) -> Option<VideoFrame> {
        self.media.as_mut()?.poll_video()
    }

    /// Whether the call is Secure and carries video (both sides set it up).
    pub fn has_video(&self) -> bool {
        self.media.as_ref().is_some_and(Media::has_video)
    }

    /// The next 10 ms of received audio (480 samples at 48 kHz) into
    /// `out`; silence until media flows.
    pub fn pull_audio(&mut self, now: Instant, out: &mut Vec<i16>) {
        match self.media.as_mut() {
            Some(m) if self.state != State::Ended => m.pull(now, out),
            _ => {
                out.clear();
                out.resize(media::PULL_SAMPLES, 0);
            }
        }
    }

    /// Advances timers: ring, setup and media timeouts, ZRTP retransmissions,
    /// RTCP reports and statistics.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Ended {
            return;
        }
        let offer_gone = self.offer_gone.filter(|_| self.state == State::Calling);
        if offer_gone.is_some_and(|d| d <= now) {
            self.offer_gone = None;
            self.fail(EndReason::NoAnswer);
            return;
        }
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            let reason = match self.state {
                State::Answered if self.media.is_some() => EndReason::MediaTimeout,
                State::Answered => EndReason::SetupTimeout,
                _ => EndReason::NoAnswer,
            };
            self.fail(reason);
            return;
        }
        if self.zrtp_started
            && let Some(ep) = self.zrtp.as_mut()
        {
            ep.handle_timeout(now);
            self.drain_zrtp(now);
        }
        if let Some(m) = self.media.as_mut() {
            m.handle_timeout(now);
            self.flush_media();
        }
        if let Some(t) = self.next_stats
            && t <= now
        {
            let mut next = t + self.cfg.stats_interval;
            if next <= now {
                next = now + self.cfg.stats_interval;
            }
            self.next_stats = Some(next);
            let s = self.stats();
            self.event(Event::Stats(Box::new(s)));
        }
    }

    /// When [`Call::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Ended {
            return None;
        }
        let zrtp = self
            .zrtp
            .as_ref()
            .filter(|_| self.zrtp_started)
            .and_then(Endpoint::poll_timeout);
        let media = self.media.as_ref().map(Media::poll_timeout);
        let offer_gone = self.offer_gone.filter(|_| self.state == State::Calling);
        [self.deadline, offer_gone, zrtp, media, self.next_stats]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next datagram or ICE message for the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A statistics snapshot now (also emitted as [`Event::Stats`]).
    pub fn stats(&self) -> CallStats {
        let mut s = CallStats::default();
        if let Some(m) = &self.media {
            s.inbound = m.inbound();
            s.outbound = m.outbound();
            s.remote_inbound.round_trip_time = m.rtt();
            s.video = m.video_stats();
        }
        s.candidate_pair.selected = self.path.is_some();
        s.candidate_pair.relayed = self.path.is_some_and(|p| p.relayed);
        s
    }

    // ----- signalling -----

    fn endpoint(&self, mut zcfg: zrtp::Config) -> Endpoint {
        zcfg.ssrc = self.ssrc;
        zcfg.policy = self.cfg.zrtp_policy.clone();
        Endpoint::new(zcfg, self.cfg.zid_cache.clone())
    }

    fn on_signal(&mut self, now: Instant, s: CallSignal) -> Result<(), CallError> {
        let state = self.state;
        match (s, state) {
            (CallSignal::Offer(desc), State::Idle) if !self.outgoing => {
                let hash = parse_hash(&desc)?;
                let mut zcfg = zrtp::Config::new(Role::Responder);
                zcfg.peer_hello_hash = Some(hash);
                self.zrtp = Some(self.endpoint(zcfg));
                self.remote = Some(bounded(desc));
                self.state = State::Incoming;
                self.deadline = Some(now + self.cfg.ring_timeout);
                self.event(Event::Ringing { incoming: true });
                self.signal(CallSignal::Ringing);
            }
            (CallSignal::Ringing, State::Calling) => {
                self.rung = true;
                self.offer_gone = None;
                self.event(Event::Ringing { incoming: false });
            }
            (CallSignal::Answer(desc), State::Calling) => {
                let hash = parse_hash(&desc)?;
                if let Some(ep) = self.zrtp.as_mut() {
                    ep.set_peer_hello_hash(hash);
                }
                let desc = bounded(desc);
                self.state = State::Answered;
                self.deadline = Some(now + self.cfg.setup_timeout);
                self.feed_remote_ice(&desc, true);
                self.remote = Some(desc);
            }
            (CallSignal::Decline, State::Calling) => self.end(EndReason::RemoteDeclined),
            (CallSignal::Hangup, s) if s != State::Ended => self.end(EndReason::RemoteHangup),
            (CallSignal::Ice(m), State::Answered) => self.push_transmit(Transmit::IceSignal(m)),
            (CallSignal::Ice(m), State::Calling | State::Incoming) => {
                // Trickled before ICE starts on our side: held until then.
                if self.queued_ice.len() < MAX_CANDIDATES {
                    self.queued_ice.push(m);
                }
            }
            (other, s) => {
                return Err(CallError::BadSignal(format!(
                    "{} while {}",
                    signal_name(&other),
                    s.name()
                )));
            }
        }
        Ok(())
    }

    /// Hands the peer's ICE credentials and candidates to our ICE session.
    fn feed_remote_ice(&mut self, desc: &SessionDescription, answer: bool) {
        let (ufrag, pwd) = (desc.ice_ufrag.clone(), desc.ice_pwd.clone());
        self.push_transmit(Transmit::IceSignal(if answer {
            SignalMessage::Answer { ufrag, pwd }
        } else {
            SignalMessage::Offer { ufrag, pwd }
        }));
        for c in &desc.candidates {
            self.push_transmit(Transmit::IceSignal(SignalMessage::Candidate {
                ufrag: desc.ice_ufrag.clone(),
                candidate: c.clone(),
            }));
        }
        for m in std::mem::take(&mut self.queued_ice) {
            self.push_transmit(Transmit::IceSignal(m));
        }
    }

    fn on_local_ice(&mut self, m: SignalMessage) {
        if self.described {
            // Trickle and ICE restarts go straight to the peer.
            self.signal(CallSignal::Ice(m));
            return;
        }
        match m {
            SignalMessage::Offer { ufrag, pwd } | SignalMessage::Answer { ufrag, pwd } => {
                self.local_ice = Some((ufrag, pwd));
                self.local_cands.clear();
            }
            SignalMessage::Candidate { candidate, .. } => {
                if self.local_cands.len() < MAX_CANDIDATES {
                    self.local_cands.push(candidate);
                }
            }
        }
        self.describe();
    }

    /// Sends our offer or answer once we have placed/answered and know
    /// our ICE credentials.
    fn describe(&mut self) {
        let due = match self.state {
            State::Calling => self.outgoing,
            State::Answered => !self.outgoing,
            _ => false,
        };
        let (Some((ufrag, pwd)), Some(ep), false, true) =
            (&self.local_ice, &self.zrtp, self.described, due)
        else {
            return;
        };
        let desc = SessionDescription {
            ice_ufrag: ufrag.clone(),
            ice_pwd: pwd.clone(),
            candidates: std::mem::take(&mut self.local_cands),
            zrtp_hash: ep.hello_hash().to_string(),
            codec: CodecParams {
                fec: self.cfg.audio.fec,
                dtx: self.cfg.audio.dtx,
                ..CodecParams::default()
            },
            // An answer carries video only if the offer did.
            video: self
                .cfg
                .video
                .as_ref()
                .filter(|_| self.outgoing || self.remote_video().is_some())
                .map(|v| VideoParams {
                    nack: v.nack,
                    ..VideoParams::default()
                }),
        };
        self.described = true;
        self.signal(if self.outgoing {
            CallSignal::Offer(desc)
        } else {
            CallSignal::Answer(desc)
        });
    }

    // ----- transport -----

    fn on_ice(&mut self, now: Instant, e: IceEvent) {
        if self.state == State::Ended {
            return;
        }
        match e {
            IceEvent::Selected(p) => {
                let kind = |p: &SelectedPath| p.relayed;
                if self.path.as_ref().map(kind) != Some(p.relayed) {
                    self.event(Event::PathChanged(if p.relayed {
                        PathKind::Relay
                    } else {
                        PathKind::Direct
                    }));
                }
                let first = self.path.is_none();
                self.path = Some(p);
                if first {
                    self.event(Event::Connected);
                    self.next_stats = Some(now + self.cfg.stats_interval);
                    self.start_zrtp(now);
                }
            }
            IceEvent::State(IceState::Failed) if !self.is_secure() => {
                self.fail(EndReason::ConnectionFailed);
            }
            IceEvent::ServerFailed { server, reason }
                if self.server_reports < MAX_SERVER_REPORTS =>
            {
                self.server_reports += 1;
                self.event(Event::ServerFailed { server, reason });
            }
            _ => {}
        }
    }

    fn start_zrtp(&mut self, now: Instant) {
        if let Some(ep) = self.zrtp.as_mut()
            && !self.zrtp_started
        {
            self.zrtp_started = true;
            ep.start(now);
            self.drain_zrtp(now);
        }
    }

    fn on_datagram(&mut self, now: Instant, d: &[u8]) {
        if self.state != State::Answered {
            return;
        }
        match classify(d) {
            PacketKind::Zrtp => {
                // A peer that saw the path first: start rather than drop.
                self.start_zrtp(now);
                if let Some(ep) = self.zrtp.as_mut() {
                    // Bad ZRTP is counted by the endpoint and otherwise ignored.
                    let _ = ep.handle_input(now, d);
                }
                self.drain_zrtp(now);
            }
            PacketKind::Rtp | PacketKind::Rtcp => {
                if let Some(m) = self.media.as_mut() {
                    // Rejections are counted (SRTP stats, packetsDiscarded);
                    // only what authenticates shows that the peer is there.
                    if m.receive(now, d).is_ok() {
                        self.deadline = Some(now + self.cfg.media_timeout);
                    }
                    self.flush_media();
                }
            }
            _ => {}
        }
    }

    fn drain_zrtp(&mut self, now: Instant) {
        let Some(ep) = self.zrtp.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(p) = ep.poll_transmit() {
            out.push(p);
        }
        let mut evs = Vec::new();
        while let Some(e) = ep.poll_event() {
            evs.push(e);
        }
        for p in out {
            self.push_transmit(Transmit::Datagram(p));
        }
        for e in evs {
            match e {
                zrtp::Event::HelloHashMismatch => self.event(Event::HelloHashMismatch),
                zrtp::Event::CacheMismatch { .. } => self.event(Event::CacheMismatch),
                zrtp::Event::Secure(info) => self.go_secure(now, &info),
                // A zrtp-hash that does not match is a man in the middle,
                // even when it is learnt after keying: always the end.
                zrtp::Event::Failed(Failure::HelloHashMismatch) => {
                    self.fail(EndReason::HelloHashMismatch)
                }
                // Once keyed, an (unauthenticated) ZRTP Error cannot end the call.
                zrtp::Event::Failed(_) if self.media.is_some() => {}
                zrtp::Event::Failed(f) => self.fail(EndReason::ZrtpFailed(f)),
                _ => {}
            }
        }
    }

    /// The peer's video, if its offer or answer carries video we can receive.
    fn remote_video(&self) -> Option<&VideoParams> {
        let ours = VideoParams::default();
        self.remote
            .as_ref()
            .and_then(|r| r.video.as_ref())
            .filter(|v| v.payload_type == ours.payload_type)
    }

    fn go_secure(&mut self, now: Instant, info: &zrtp::SecureInfo) {
        if self.media.is_some() || self.state == State::Ended {
            return;
        }
        // NACK only when both sides take it.
        let video = self.cfg.video.clone().and_then(|mut v| {
            v.nack &= self.remote_video()?.nack;
            Some(v)
        });
        match Media::new(
            now,
            info,
            self.ssrc,
            &self.cfg.audio,
            video.as_ref(),
            self.cfg.rtcp_interval,
            self.ntp_anchor,
        ) {
            Ok(m) => {
                self.media = Some(m);
                self.deadline = Some(now + self.cfg.media_timeout);
                self.event(Event::SecureUp {
                    sas: info.sas.clone(),
                    algorithms: info.suite,
                    sas_verified: info.sas_verified,
                });
            }
            Err(_) => self.fail(EndReason::NoSrtpProfile),
        }
    }

    fn flush_media(&mut self) {
        let Some(m) = self.media.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(d) = m.poll_transmit() {
            out.push(d);
        }
        for d in out {
            self.push_transmit(Transmit::Datagram(d));
        }
    }

    // ----- endings and queues -----

    /// Ends the call and tells the peer.
    fn fail(&mut self, reason: EndReason) {
        if self.state == State::Ended {
            return;
        }
        self.signal(CallSignal::Hangup);
        self.end(reason);
    }

    fn end(&mut self, reason: EndReason) {
        if self.state == State::Ended {
            return;
        }
        self.state = State::Ended;
        self.deadline = None;
        self.next_stats = None;
        self.event(Event::Ended { reason });
    }

    fn signal(&mut self, s: CallSignal) {
        self.event(Event::Signal(s));
    }

    fn event(&mut self, e: Event) {
        // The hangup and `Ended` come once per call and must not be lost
        // to an app that was slow to poll.
        let last_words = matches!(e, Event::Ended { .. } | Event::Signal(CallSignal::Hangup));
        if self.events.len() < MAX_QUEUE || last_words {
            self.events.push_back(e);
        }
    }

    fn push_transmit(&mut self, t: Transmit) {
        if self.transmits.len() < MAX_QUEUE {
            self.transmits.push_back(t);
        }
    }
}

fn parse_hash(desc: &SessionDescription) -> Result<HelloHash, CallError> {
    desc.zrtp_hash
        .parse()
        .map_err(|e: zrtp::hello_hash::BadHelloHash| CallError::BadSignal(e.to_string()))
}

/// Keeps at most [`MAX_CANDIDATES`] candidates from a peer's description.
fn bounded(mut desc: SessionDescription) -> SessionDescription {
    desc.candidates.truncate(MAX_CANDIDATES);
    desc
}

fn signal_name(s: &CallSignal) -> &'static str {
    match s {
        CallSignal::Offer(_) => "offer",
        CallSignal::Ringing => "ringing",
        CallSignal::Answer(_) => "answer",
        CallSignal::Decline => "decline",
        CallSignal::Hangup => "hangup",
        CallSignal::Ice(_) => "ICE message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hangup_and_ended_are_queued_when_the_event_queue_is_full() {
        let now = Instant::now();
        let mut call = Call::outgoing(now, CallConfig::default()).unwrap();
        for _ in 0..MAX_QUEUE + 10 {
            call.event(Event::Connected);
        }
        call.hang_up(now);
        let events: Vec<_> = std::iter::from_fn(|| call.poll_event()).collect();
        assert_eq!(events.len(), MAX_QUEUE + 2);
        assert!(matches!(
            events[MAX_QUEUE],
            Event::Signal(CallSignal::Hangup)
        ));
        assert!(matches!(
            events[MAX_QUEUE + 1],
            Event::Ended {
                reason: EndReason::LocalHangup
            }
        ));
    }

    fn ended(call: &mut Call) -> Option<EndReason> {
        std::iter::from_fn(|| call.poll_event()).find_map(|e| match e {
            Event::Ended { reason } => Some(reason),
            _ => None,
        })
    }

    #[test]
    fn an_offer_that_signalling_dropped_unheard_ends_the_call_as_no_answer() {
        let t0 = Instant::now();
        let kept = Duration::from_secs(3);
        let mut call = Call::outgoing(t0, CallConfig::default()).unwrap();
        assert!(call.offer_queued(t0, kept).is_err(), "not placed yet");
        call.place(t0).unwrap();
        call.offer_queued(t0, kept).unwrap();
        let gone = t0 + kept + OFFER_GRACE;
        assert_eq!(call.poll_timeout(), Some(gone));
        call.handle_timeout(gone - Duration::from_millis(1));
        assert_eq!(ended(&mut call), None);
        call.handle_timeout(gone);
        assert_eq!(ended(&mut call), Some(EndReason::NoAnswer));
        assert!(gone < t0 + CallConfig::default().ring_timeout);
        // Kept past the ring timeout (or a hostile server's huge figure):
        // the ring timeout ends it, as without the word.
        let mut call = Call::outgoing(t0, CallConfig::default()).unwrap();
        call.place(t0).unwrap();
        call.offer_queued(t0, Duration::MAX).unwrap();
        assert_eq!(
            call.poll_timeout(),
            Some(t0 + CallConfig::default().ring_timeout)
        );
    }

    #[test]
    fn a_callee_that_rang_is_given_the_whole_ring_timeout() {
        let t0 = Instant::now();
        let cfg = CallConfig::default();
        let ring_timeout = cfg.ring_timeout;
        // Queued, then the callee woke and rang.
        let mut call = Call::outgoing(t0, cfg.clone()).unwrap();
        call.place(t0).unwrap();
        call.offer_queued(t0, Duration::from_secs(3)).unwrap();
        call.handle_input(t0, Input::Signal(CallSignal::Ringing))
            .unwrap();
        call.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(ended(&mut call), None);
        call.handle_timeout(t0 + ring_timeout);
        assert_eq!(ended(&mut call), Some(EndReason::NoAnswer));
        // Rang first: a late word that the offer was queued changes nothing.
        let mut call = Call::outgoing(t0, cfg).unwrap();
        call.place(t0).unwrap();
        call.handle_input(t0, Input::Signal(CallSignal::Ringing))
            .unwrap();
        call.offer_queued(t0, Duration::from_secs(3)).unwrap();
        call.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(ended(&mut call), None);
    }

    #[test]
    fn a_transport_that_stops_ends_the_call() {
        let now = Instant::now();
        let mut call = Call::outgoing(now, CallConfig::default()).unwrap();
        call.place(now).unwrap();
        call.handle_input(now, Input::TransportClosed).unwrap();
        assert!(call.is_ended());
        assert!(std::iter::from_fn(|| call.poll_event()).any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::ConnectionFailed
            }
        )));
    }
}
