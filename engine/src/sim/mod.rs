//! A deterministic call simulator: two [`Call`]s, each with its own
//! [`IceSession`], joined by a signalling channel with a fixed delay and
//! a network whose per-direction delay and loss come from `sotto_jitter`
//! link models (real traces included), all in virtual time. Nothing here
//! reads the clock: `t0` is given and time advances from event to event,
//! so a minute of call takes a fraction of that to run, and the network
//! and audio are the same on every run (keys and SSRCs stay random).
//!
//! Side [`Side::A`] is the caller, [`Side::B`] the callee. Each side
//! keeps a [`Record`] log of every datagram that left its socket and every
//! call event, in the order they happened.
//!
//! Each side's microphone and speaker ([`SimAudio`]) are paced by the
//! 10 ms tick, or with [`Sim::set_device`] by a sound card on its own
//! clock; the call reaches them through the driver's own [`AudioPump`].
//!
//! [`Sim::new_relayed`] adds a TURN relay host: a [`SimRelay`] (a sans-IO
//! TURN server behind an adapter, e.g. sotto-relay's core in the tests)
//! that the calls' ICE allocates on. Datagrams a side sends to the relay
//! cross that side's link schedule; what the relay sends on to a side
//! takes a fixed hop delay; datagrams between two of the relay's own
//! addresses (relay to relay) stay inside it. So a relayed path is only
//! as good as what the relay really forwards.
//!
//! ```
//! use sotto_engine::call::{CallConfig, Event};
//! use sotto_engine::sim::{LinkSchedule, Network, Side, Sim};
//! use std::time::{Duration, Instant};
//!
//! let net = Network::symmetric(LinkSchedule::fixed(Duration::from_millis(30)));
//! let mut sim = Sim::new(Instant::now(), CallConfig::default(), CallConfig::default(), net)?;
//! sim.place()?;
//! assert!(sim.run_until(Duration::from_secs(5), |s| s.peer(Side::B).is_ringing()));
//! sim.answer()?;
//! assert!(sim.run_until(Duration::from_secs(10), |s| s.both_secure()));
//! assert_eq!(sim.peer(Side::A).sas(), sim.peer(Side::B).sas());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audio;
pub mod link;
pub mod port;
pub mod room;
pub mod video;

pub use link::LinkSchedule;
pub use port::{DeviceClock, DeviceStats, SimAudio};
pub use video::SimVideo;

use crate::call::pump::AudioPump;
use crate::call::{Call, CallConfig, CallError, CallSignal, Event, Input, Transmit};
use crate::demux::{PacketKind, classify};
use crate::ice::{IceConfig, IceError, IceSession, SelectedPath, TurnServer};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Audio is pushed and pulled every 10 ms.
const TICK: Duration = Duration::from_millis(10);

/// One end of the simulated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller.
    A,
    /// The callee.
    B,
}

impl Side {
    fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One entry of a side's log, at an offset from the start.
#[derive(Debug, Clone)]
pub enum Record {
    /// A datagram left this side's socket.
    Sent {
        /// When.
        at: Duration,
        /// Its first-byte class (RFC 7983); for TURN ChannelData, the
        /// class of what the channel carries (RTP through a relay is RTP).
        kind: PacketKind,
        /// Its first byte.
        first_byte: u8,
    },
    /// The call emitted an event.
    Event {
        /// When.
        at: Duration,
        /// The event.
        event: Event,
    },
}

/// The path between the two sides.
#[derive(Debug, Clone)]
pub struct Network {
    /// Fate of datagrams from A to B.
    pub a_to_b: LinkSchedule,
    /// Fate of datagrams from B to A.
    pub b_to_a: LinkSchedule,
    /// One-way delay of signalling messages (lossless, in order).
    pub signalling_delay: Duration,
}

impl Network {
    /// The same schedule both ways, 50 ms signalling delay.
    pub fn symmetric(link: LinkSchedule) -> Self {
        Self {
            a_to_b: link.clone(),
            b_to_a: link,
            signalling_delay: Duration::from_millis(50),
        }
    }
}

/// A datagram between two simulated hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender address.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// Payload.
    pub data: Vec<u8>,
}

/// A TURN relay host in the simulation, sans-IO. The simulator hands it
/// every datagram addressed to one of its addresses and carries what it
/// sends; it reads no clock.
pub trait SimRelay {
    /// Where the calls' ICE reaches the relay and how it authenticates.
    fn turn_server(&self) -> TurnServer;
    /// Whether `addr` is the relay's (its listening or a relayed address).
    fn owns(&self, addr: SocketAddr) -> bool;
    /// Handles a datagram that arrived at `d.to`; datagrams to send go to `out`.
    fn handle(&mut self, now: Instant, d: Datagram, out: &mut Vec<Datagram>);
    /// When [`SimRelay::handle_timeout`] must next run.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Expires allocations, permissions and channels; datagrams to `out`.
    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Datagram>);
}

/// The relay host and its hop to the sides.
struct RelayHost {
    relay: Box<dyn SimRelay>,
    /// Delay from the relay to either side (lossless).
    hop: Duration,
    out: Vec<Datagram>,
}

/// Errors setting up a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An ICE session would not start.
    #[error(transparent)]
    Ice(#[from] IceError),
    /// A sound card's clock out of range (see [`DeviceClock::validate`]).
    #[error("device clock: {0}")]
    DeviceClock(String),
    /// A call's config refused (see [`crate::call::CallConfig::validate`]).
    #[error("call: {0}")]
    Call(crate::call::ConfigError),
}

shown_from!(SimError, SimError::Call, crate::call::ConfigError);

/// Why [`Sim::connect`] or [`Sim::answer_when_ringing`] stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A refused placing or answering the call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// B was not ringing by the limit.
    #[error("B not ringing {at:?} in; A's events: {events}")]
    NotRinging {
        /// The limit (elapsed time).
        at: Duration,
        /// A's events so far.
        events: String,
    },
    /// Both sides were not Secure by the limit.
    #[error("not Secure {at:?} in; A's events: {events}")]
    NotSecure {
        /// The limit (elapsed time).
        at: Duration,
        /// A's events so far.
        events: String,
    },
}

/// Media datagram counters of one direction (sent by this side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// RTP datagrams sent.
    pub rtp_sent: u64,
    /// RTP datagrams the link lost.
    pub rtp_lost: u64,
    /// All datagrams sent.
    pub sent: u64,
    /// All datagrams the link lost.
    pub lost: u64,
}

/// One side: its call, ICE session, audio and log.
pub struct Peer {
    /// The call under test.
    pub call: Call,
    ice: IceSession,
    addr: SocketAddr,
    /// Its microphone and speaker: what it said and what it heard.
    pub audio: SimAudio,
    /// Its camera and screen, if it has them (see [`Sim::set_video`]).
    pub video: Option<SimVideo>,
    pump: AudioPump,
    /// Datagrams and events, in order.
    pub log: Vec<Record>,
    /// What left this side's socket and what the link did to it.
    pub wire: WireStats,
    ended: bool,
}

impl Peer {
    /// The path its media takes now, if any.
    pub fn path(&self) -> Option<SelectedPath> {
        self.ice.selected()
    }

    /// Events so far, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.log.iter().filter_map(|r| match r {
            Record::Event { event, .. } => Some(event),
            Record::Sent { .. } => None,
        })
    }

    /// Whether an incoming-call [`Event::Ringing`] has been seen.
    pub fn is_ringing(&self) -> bool {
        self.events()
            .any(|e| matches!(e, Event::Ringing { incoming: true }))
    }

    /// The SAS from [`Event::SecureUp`], if secure.
    pub fn sas(&self) -> Option<String> {
        self.events().find_map(|e| match e {
            Event::SecureUp { sas, .. } => Some(sas.clone()),
            _ => None,
        })
    }

    /// When [`Event::SecureUp`] was emitted.
    pub fn secure_at(&self) -> Option<Duration> {
        self.log.iter().find_map(|r| match r {
            Record::Event {
                at,
                event: Event::SecureUp { .. },
            } => Some(*at),
            _ => None,
        })
    }
}

/// Which host a datagram in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Peer(Side),
    Relay,
}

struct InFlight {
    at: Instant,
    seq: u64,
    to: Host,
    dg: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The class of a datagram, or of its payload if it is TURN ChannelData
/// (a 4-byte header, RFC 8656 12.4).
fn carried_kind(data: &[u8]) -> PacketKind {
    match classify(data) {
        PacketKind::TurnChannel => classify(data.get(4..).unwrap_or_default()),
        k => k,
    }
}

/// Rewrites a signalling message in flight (sender side given), e.g. to
/// play a man in the middle.
pub type SignalHook = Box<dyn FnMut(Side, &mut CallSignal)>;

/// Two calls and a network in virtual time. See the module documentation.
pub struct Sim {
    t0: Instant,
    now: Instant,
    next_tick: Instant,
    peers: [Peer; 2],
    net: Network,
    packets: BinaryHeap<Reverse<InFlight>>,
    signals: VecDeque<(Instant, Side, CallSignal)>,
    seq: u64,
    hook: Option<SignalHook>,
    relay: Option<RelayHost>,
}

impl Sim {
    /// Caller A with `a`, callee B with `b`, over `net`, starting at `t0`.
    pub fn new(t0: Instant, a: CallConfig, b: CallConfig, net: Network) -> Result<Self, SimError> {
        Self::build(t0, a, b, net, None)
    }

    /// As [`Sim::new`], with `relay` as both sides' TURN server, `hop` away
    /// from each side on the way back (the way there crosses the sender's
    /// link in `net`). With `relay_only` in both configs, media can only
    /// take the relayed path. Side A is 10.0.0.1, side B 10.0.0.2.
    pub fn new_relayed(
        t0: Instant,
        a: CallConfig,
        b: CallConfig,
        net: Network,
        relay: Box<dyn SimRelay>,
        hop: Duration,
    ) -> Result<Self, SimError> {
        let host = RelayHost {
            relay,
            hop,
            out: Vec::new(),
        };
        Self::build(t0, a, b, net, Some(host))
    }

    fn build(
        t0: Instant,
        a: CallConfig,
        b: CallConfig,
        net: Network,
        relay: Option<RelayHost>,
    ) -> Result<Self, SimError> {
        let mut base = IceConfig::default();
        if let Some(r) = &relay {
            base.turn_servers.push(r.relay.turn_server());
        }
        let peer = |mut cfg: CallConfig, outgoing: bool, ip: [u8; 4]| -> Result<Peer, SimError> {
            // RTCP timing is randomised: fixed here so that runs repeat.
            cfg.audio.rtcp_seed.get_or_insert(u64::from(outgoing));
            let call = if outgoing {
                Call::outgoing(t0, cfg)?
            } else {
                Call::incoming(t0, cfg)?
            };
            let addr = SocketAddr::from((ip, 40_000));
            let ice = IceSession::new(t0, call.ice_config(base.clone()), &[addr])?;
            Ok(Peer {
                call,
                ice,
                addr,
                audio: SimAudio::default(),
                video: None,
                pump: AudioPump::default(),
                log: Vec::new(),
                wire: WireStats::default(),
                ended: false,
            })
        };
        let mut sim = Self {
            t0,
            now: t0,
            next_tick: t0,
            peers: [
                peer(a, true, [10, 0, 0, 1])?,
                peer(b, false, [10, 0, 0, 2])?,
            ],
            net,
            packets: BinaryHeap::new(),
            signals: VecDeque::new(),
            seq: 0,
            hook: None,
            relay,
        };
        sim.pump_ice(Side::A);
        sim.pump_ice(Side::B);
        Ok(sim)
    }

    /// The microphone of `side`: 48 kHz mono PCM, looped.
    pub fn set_audio(&mut self, side: Side, pcm: Vec<i16>) {
        self.peers[side.idx()].audio.set_source(pcm);
    }

    /// Gives `side` a sound card with its own `clock`: from now on its
    /// microphone and speaker run on that clock, behind queues the call
    /// reaches at each tick of the system clock ([`SimAudio`]).
    pub fn set_device(&mut self, side: Side, clock: DeviceClock) -> Result<(), SimError> {
        clock.validate().map_err(SimError::DeviceClock)?;
        self.peers[side.idx()].audio.set_device(clock);
        Ok(())
    }

    /// Installs a hook that sees (and may change) every signalling message.
    pub fn set_signal_hook(&mut self, hook: SignalHook) {
        self.hook = Some(hook);
    }

    /// One side.
    pub fn peer(&self, side: Side) -> &Peer {
        &self.peers[side.idx()]
    }

    /// One side, mutably (e.g. to mute or confirm the SAS).
    pub fn peer_mut(&mut self, side: Side) -> &mut Peer {
        &mut self.peers[side.idx()]
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether both sides are Secure.
    pub fn both_secure(&self) -> bool {
        self.peers.iter().all(|p| p.call.is_secure())
    }

    /// A places the call.
    pub fn place(&mut self) -> Result<(), CallError> {
        let now = self.now;
        self.peers[0].call.place(now)?;
        self.drain_call(Side::A);
        Ok(())
    }

    /// B answers.
    pub fn answer(&mut self) -> Result<(), CallError> {
        let now = self.now;
        self.peers[1].call.answer(now)?;
        self.drain_call(Side::B);
        self.pump_ice(Side::B);
        Ok(())
    }

    /// A places the call, and B answers once it rings, no later than
    /// `ringing_by` (elapsed time). Returns when B answered.
    pub fn answer_when_ringing(&mut self, ringing_by: Duration) -> Result<Duration, ConnectError> {
        self.place()?;
        if !self.run_until(ringing_by, |s| s.peer(Side::B).is_ringing()) {
            return Err(ConnectError::NotRinging {
                at: ringing_by,
                events: self.events_of(Side::A),
            });
        }
        let answered = self.elapsed();
        self.answer()?;
        Ok(answered)
    }

    /// [`Sim::answer_when_ringing`], then runs until both sides are
    /// Secure, no later than `secure_by`: how most simulated calls start.
    /// Returns when B answered.
    pub fn connect(
        &mut self,
        ringing_by: Duration,
        secure_by: Duration,
    ) -> Result<Duration, ConnectError> {
        let answered = self.answer_when_ringing(ringing_by)?;
        if !self.run_until(secure_by, Sim::both_secure) {
            return Err(ConnectError::NotSecure {
                at: secure_by,
                events: self.events_of(Side::A),
            });
        }
        Ok(answered)
    }

    fn events_of(&self, side: Side) -> String {
        format!("{:?}", self.peer(side).events().collect::<Vec<_>>())
    }

    /// `side`'s host moves to `addr` (a network change: its old address is
    /// gone, and what is sent to it is lost) and its ICE session follows
    /// ([`IceSession::rehome`]).
    pub fn move_to(&mut self, side: Side, addr: SocketAddr) -> Result<(), IceError> {
        let now = self.now;
        let p = &mut self.peers[side.idx()];
        p.ice.rehome(now, &[addr])?;
        p.addr = addr;
        self.pump_ice(side);
        Ok(())
    }

    /// `side` hangs up.
    pub fn hang_up(&mut self, side: Side) {
        let now = self.now;
        self.peers[side.idx()].call.hang_up(now);
        self.drain_call(side);
    }

    /// Runs until `stop` holds (checked after every step) or the elapsed
    /// time reaches `limit`; returns whether `stop` held.
    pub fn run_until(&mut self, limit: Duration, mut stop: impl FnMut(&Sim) -> bool) -> bool {
        let limit = self.t0 + limit;
        loop {
            if stop(self) {
                return true;
            }
            if !self.step(limit) {
                return stop(self);
            }
        }
    }

    /// Gives `side` a camera and a screen (its call needs a video config
    /// for them to be used).
    pub fn set_video(&mut self, side: Side, video: SimVideo) {
        self.peers[side.idx()].video = Some(video);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.elapsed() + d;
        self.run_until(until, |_| false);
    }

    /// Advances to the next thing due (no later than `limit`) and does it.
    fn step(&mut self, limit: Instant) -> bool {
        let mut next = self.next_tick;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        consider(self.packets.peek().map(|p| p.0.at));
        consider(self.signals.front().map(|s| s.0));
        consider(self.relay.as_ref().and_then(|r| r.relay.poll_timeout()));
        for p in &mut self.peers {
            consider(p.call.poll_timeout());
            if !p.ended {
                consider(p.ice.poll_timeout());
            }
        }
        if next > limit {
            self.now = self.now.max(limit);
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        while self.packets.peek().is_some_and(|p| p.0.at <= now) {
            if let Some(Reverse(p)) = self.packets.pop() {
                self.deliver(p);
            }
        }
        while self.signals.front().is_some_and(|s| s.0 <= now) {
            if let Some((_, to, msg)) = self.signals.pop_front() {
                let _ = self.peers[to.idx()]
                    .call
                    .handle_input(now, Input::Signal(msg));
                self.drain_call(to);
                self.pump_ice(to);
            }
        }
        if let Some(r) = self.relay.as_mut()
            && r.relay.poll_timeout().is_some_and(|t| t <= now)
        {
            r.relay.handle_timeout(now, &mut r.out);
            self.route_relay_output();
        }
        for side in [Side::A, Side::B] {
            let p = &mut self.peers[side.idx()];
            if !p.ended && p.ice.poll_timeout().is_some_and(|t| t <= now) {
                p.ice.handle_timeout(now);
                self.pump_ice(side);
            }
            let p = &mut self.peers[side.idx()];
            if p.call.poll_timeout().is_some_and(|t| t <= now) {
                p.call.handle_timeout(now);
                self.drain_call(side);
                self.pump_ice(side);
            }
        }
        if now >= self.next_tick {
            self.next_tick += TICK;
            self.audio_tick(Side::A);
            self.audio_tick(Side::B);
        }
        true
    }

    fn audio_tick(&mut self, side: Side) {
        let now = self.now;
        let p = &mut self.peers[side.idx()];
        p.audio.advance(now - self.t0);
        p.pump.tick(now, &mut p.call, &mut p.audio);
        if let Some(v) = p.video.as_mut() {
            v.tick(now, now - self.t0, &mut p.call);
        }
        self.drain_call(side);
        self.pump_ice(side);
    }

    fn deliver(&mut self, pkt: InFlight) {
        let now = self.now;
        let side = match pkt.to {
            Host::Peer(side) => side,
            Host::Relay => {
                if let Some(r) = self.relay.as_mut() {
                    r.relay.handle(now, pkt.dg, &mut r.out);
                    self.route_relay_output();
                }
                return;
            }
        };
        let p = &mut self.peers[side.idx()];
        // For an address the host no longer has (see `Sim::move_to`).
        if p.ended || pkt.dg.to != p.addr {
            return;
        }
        if let Some(media) = p.ice.handle_input(now, p.addr, pkt.dg.from, &pkt.dg.data) {
            let media = media.to_vec();
            let _ = p.call.handle_input(now, Input::Datagram(&media));
            self.drain_call(side);
        }
        self.pump_ice(side);
    }

    fn send(&mut self, at: Instant, to: Host, dg: Datagram) {
        self.seq += 1;
        self.packets.push(Reverse(InFlight {
            at,
            seq: self.seq,
            to,
            dg,
        }));
    }

    /// Puts what the relay sent on its way: to a side after the hop delay,
    /// to another of its own addresses at once; anything else is lost.
    fn route_relay_output(&mut self) {
        let Some(r) = self.relay.as_mut() else {
            return;
        };
        let out = std::mem::take(&mut r.out);
        let hop = r.hop;
        for dg in out {
            let host = if dg.to == self.peers[0].addr {
                Some((hop, Host::Peer(Side::A)))
            } else if dg.to == self.peers[1].addr {
                Some((hop, Host::Peer(Side::B)))
            } else if self.relay.as_ref().is_some_and(|r| r.relay.owns(dg.to)) {
                Some((Duration::ZERO, Host::Relay))
            } else {
                None
            };
            if let Some((delay, to)) = host {
                self.send(self.now + delay, to, dg);
            }
        }
    }

    /// Moves the call's output to ICE, the wire and the peer's signalling:
    /// datagrams before events, so the log shows what left first.
    fn drain_call(&mut self, side: Side) {
        let now = self.now;
        loop {
            let p = &mut self.peers[side.idx()];
            let Some(t) = p.call.poll_transmit() else {
                break;
            };
            match t {
                // Before a pair is selected there is nowhere to send: lost.
                Transmit::Datagram(d) => {
                    let _ = p.ice.send_media(now, &d);
                }
                Transmit::IceSignal(m) => {
                    let _ = p.ice.handle_signal(now, m);
                }
            }
            self.flush_wire(side);
        }
        let at = now - self.t0;
        while let Some(e) = self.peers[side.idx()].call.poll_event() {
            match &e {
                Event::Signal(s) => {
                    let mut s = s.clone();
                    if let Some(h) = self.hook.as_mut() {
                        h(side, &mut s);
                    }
                    self.signals
                        .push_back((now + self.net.signalling_delay, side.other(), s));
                }
                Event::Ended { .. } => {
                    let p = &mut self.peers[side.idx()];
                    p.ice.close(now);
                    p.ended = true;
                }
                _ => {}
            }
            self.peers[side.idx()]
                .log
                .push(Record::Event { at, event: e });
        }
    }

    /// Feeds ICE's output to the wire and the call until both are quiet.
    fn pump_ice(&mut self, side: Side) {
        let now = self.now;
        loop {
            self.flush_wire(side);
            let p = &mut self.peers[side.idx()];
            // Refused inputs (wrong state) leave the call as it was.
            let _ = if let Some(m) = p.ice.poll_signal() {
                p.call.handle_input(now, Input::IceSignal(m))
            } else if let Some(e) = p.ice.poll_event() {
                p.call.handle_input(now, Input::Ice(e))
            } else if let Some(d) = p.ice.poll_media() {
                p.call.handle_input(now, Input::Datagram(&d))
            } else {
                break;
            };
            self.drain_call(side);
        }
    }

    /// Puts ICE's datagrams on the link (to the other side or the relay).
    fn flush_wire(&mut self, side: Side) {
        let at = self.now - self.t0;
        let other = self.peers[side.other().idx()].addr;
        while let Some(t) = self.peers[side.idx()].ice.poll_transmit() {
            let to = if t.to == other {
                Some(Host::Peer(side.other()))
            } else if self.relay.as_ref().is_some_and(|r| r.relay.owns(t.to)) {
                Some(Host::Relay)
            } else {
                None
            };
            let kind = carried_kind(&t.data);
            let p = &mut self.peers[side.idx()];
            p.log.push(Record::Sent {
                at,
                kind,
                first_byte: t.data.first().copied().unwrap_or(0),
            });
            p.wire.sent += 1;
            let rtp = kind == PacketKind::Rtp;
            p.wire.rtp_sent += u64::from(rtp);
            let link = match side {
                Side::A => &self.net.a_to_b,
                Side::B => &self.net.b_to_a,
            };
            // A socket on an address the host no longer has sends nothing.
            let to = to.filter(|_| t.local == p.addr);
            match (link.delay_at(at), to) {
                (Some(d), Some(to)) => {
                    let dg = Datagram {
                        from: t.local,
                        to: t.to,
                        data: t.data,
                    };
                    self.send(self.now + d, to, dg);
                }
                _ => {
                    // Lost on the link, or sent where no host listens.
                    p.wire.lost += 1;
                    p.wire.rtp_lost += u64::from(rtp);
                }
            }
        }
    }
}
