//! Sans-IO assembly of whole VP8 frames from the RTP packets of one video
//! SSRC (after SRTP), in order and only when the decoder can use them.
//!
//! A frame is the run of consecutive sequence numbers with one RTP
//! timestamp, from a packet that starts it (S = 1, PID = 0) to the packet
//! with the marker bit. A VP8 inter frame needs every frame before it, so a
//! complete frame is handed out only if it is a key frame or directly
//! follows the last one handed out. When a frame is lost — a later frame
//! has begun and the gap has waited [`AssemblerLimits::max_wait`], or the
//! buffer ran out of room — what is stuck is dropped, nothing more is handed
//! out until a key frame arrives, and the caller is asked to request one
//! (an RTCP PLI), then asked again every [`KEYFRAME_REQUEST_INTERVAL`] while
//! it does not come. The stream starts in that state too, and returns to
//! it if the sender restarts its sequence numbers behind where they were.
//!
//! ```
//! use std::time::Instant;
//! use sotto_engine::video::assembler::FrameAssembler;
//! use sotto_engine::video::vp8::Vp8Packetizer;
//!
//! // A key frame's VP8 header: P = 0 and the start code.
//! let key = [0x50, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3];
//! let packets = Vp8Packetizer::new(0).packetize(&key, 8).unwrap();
//! let mut assembler = FrameAssembler::default();
//! let now = Instant::now();
//! for (i, p) in packets.iter().enumerate() {
//!     let last = i + 1 == packets.len();
//!     assembler.insert(now, 100 + i as u16, 3000, last, p).unwrap();
//! }
//! let frame = assembler.poll_frame().unwrap();
//! assert!(frame.keyframe);
//! assert_eq!(frame.data, key);
//! ```

use super::vp8::{self, Vp8PayloadError};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How often the key-frame request is repeated while none arrives: about
/// a round trip and a key frame's encode and send on a mobile link.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Extended sequence numbers start here, so that packets reordered from
/// before the first one still have a place below it.
const EXT_SEQ_BASE: u64 = 1 << 32;

/// This many packets in a row from before what was already handed out mean
/// the sender has restarted its numbering (or jumped by more than half the
/// sequence space): the assembler starts over rather than refuse it forever.
/// Well above a burst of late packets of one dropped frame.
const LATE_RUN_RESTART: u32 = 100;

/// Bounds on what a [`FrameAssembler`] holds and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssemblerLimits {
    /// Most packets held at once, waiting or in frames not yet polled.
    pub max_packets: usize,
    /// Most payload bytes held at once, waiting or in frames not yet
    /// polled; so also the largest frame that can be assembled.
    pub max_frame_bytes: usize,
    /// How long a missing packet is waited for, once a later frame has
    /// begun, before its frame is given up as lost.
    pub max_wait: Duration,
}

impl Default for AssemblerLimits {
    /// 1024 packets, 1 MiB and 200 ms: a few key frames' worth at HD
    /// bitrates, and more reordering than a mobile link shows.
    fn default() -> Self {
        Self {
            max_packets: 1024,
            max_frame_bytes: 1 << 20,
            max_wait: Duration::from_millis(200),
        }
    }
}

/// Why [`FrameAssembler::insert`] refused a packet; each is counted in
/// [`AssemblerStats::packets_discarded`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// The payload is not a well-formed VP8 payload.
    #[error("bad VP8 payload: {0}")]
    Payload(#[from] Vp8PayloadError),
    /// A packet with this sequence number is already held.
    #[error("duplicate packet {seq}")]
    Duplicate {
        /// The RTP sequence number.
        seq: u16,
    },
    /// The packet belongs before frames already handed out or dropped.
    #[error("packet {seq} arrived after its place was given up")]
    Late {
        /// The RTP sequence number.
        seq: u16,
    },
    /// The packet does not fit in [`AssemblerLimits`], even after dropping
    /// older stuck packets.
    #[error("packet {seq} does not fit the assembler's limits")]
    OverLimit {
        /// The RTP sequence number.
        seq: u16,
    },
}

/// One whole encoded frame, ready for the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// The frame's RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// Whether it is a key frame (decodable on its own).
    pub keyframe: bool,
    /// The PictureID of its first packet, if the sender wrote one.
    pub picture_id: Option<u16>,
    /// The encoded frame: the packets' VP8 data, descriptors removed.
    pub data: Vec<u8>,
}

/// Counters of a [`FrameAssembler`], in the sense of the W3C
/// `RTCInboundRtpStreamStats` members named with each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Packets given to [`FrameAssembler::insert`] (`packetsReceived`).
    pub packets_received: u64,
    /// Packets that never became part of a frame handed out: refused by
    /// `insert` (malformed, duplicate, late, over the limits) or dropped
    /// with their frame (`packetsDiscarded`).
    pub packets_discarded: u64,
    /// Whole frames handed to [`FrameAssembler::poll_frame`] (`framesReceived`).
    pub frames_assembled: u64,
    /// Frames of which packets arrived but which were not handed out:
    /// incomplete, or undecodable after a loss (`framesDropped`).
    pub frames_dropped: u64,
    /// Key-frame requests taken by [`FrameAssembler::take_keyframe_request`],
    /// i.e. PLIs sent (`pliCount`).
    pub keyframe_requests: u64,
}

/// One packet waiting for the rest of its frame.
#[derive(Debug, Clone)]
struct Packet {
    timestamp: u32,
    marker: bool,
    starts_frame: bool,
    picture_id: Option<u16>,
    data: Vec<u8>,
}

/// A complete frame in the buffer: extended sequence numbers `first..=last`.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    last: u64,
    keyframe: bool,
}

/// What the buffer allows next.
enum Step {
    /// Hand the frame out, dropping whatever waits before it.
    Emit(Span),
    /// Drop the frame: it cannot be decoded.
    Drop(Span),
}

/// Turns the RTP packets of one VP8 stream into whole decodable frames.
///
/// Sans-IO: feed packets with [`insert`](Self::insert), call
/// [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout), take frames with
/// [`poll_frame`](Self::poll_frame) and send a PLI whenever
/// [`take_keyframe_request`](Self::take_keyframe_request) says so. Memory is
/// bounded by [`AssemblerLimits`]; no input makes it panic.
#[derive(Debug, Clone)]
pub struct FrameAssembler {
    limits: AssemblerLimits,
    /// Packets not yet part of a frame handed out, by extended sequence number.
    pending: BTreeMap<u64, Packet>,
    pending_bytes: usize,
    /// Frames handed out but not yet polled, with their packet counts.
    ready: VecDeque<(AssembledFrame, usize)>,
    ready_packets: usize,
    ready_bytes: usize,
    /// Highest extended sequence number accepted.
    highest: Option<u64>,
    /// Last extended sequence number handed out or given up: nothing at or
    /// below it is accepted again. While decoding is intact, the next
    /// frame must start right after it.
    floor: Option<u64>,
    /// The decoder has missed a frame (or has none yet): only a key frame helps.
    need_keyframe: bool,
    /// Since when the oldest waiting packets have been stuck behind a gap.
    stuck_since: Option<Instant>,
    /// When to ask for a key frame (again) while one is needed.
    next_request: Option<Instant>,
    request_pending: bool,
    /// Timestamp of the last frame counted as dropped, so a frame dropped
    /// in pieces counts once.
    last_dropped_ts: Option<u32>,
    /// Packets refused as late in a row (see [`LATE_RUN_RESTART`]).
    late_run: u32,
    /// Times the numbering was started over.
    restarts: u64,
    stats: AssemblerStats,
    /// Packets looked at by [`next_step`](Self::next_step), to show that a
    /// pass over the buffer does not start over after each drop.
    #[cfg(test)]
    scanned: std::cell::Cell<usize>,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self::new(AssemblerLimits::default())
    }
}

impl FrameAssembler {
    /// An assembler waiting for the stream's first key frame.
    pub fn new(limits: AssemblerLimits) -> Self {
        Self {
            limits,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            ready: VecDeque::new(),
            ready_packets: 0,
            ready_bytes: 0,
            highest: None,
            floor: None,
            need_keyframe: true,
            stuck_since: None,
            next_request: None,
            request_pending: false,
            last_dropped_ts: None,
            late_run: 0,
            restarts: 0,
            stats: AssemblerStats::default(),
            #[cfg(test)]
            scanned: Default::default(),
        }
    }

    /// The limits this assembler was made with (and the wait last set).
    pub fn limits(&self) -> AssemblerLimits {
        self.limits
    }

    /// The sequence number up to which packets have been handed out or
    /// given up: a packet at or before it is refused as late, so there is
    /// no point asking the sender for it.
    pub fn given_up_through(&self) -> Option<u16> {
        self.floor.map(|f| f as u16)
    }

    /// Waits `wait` for a missing packet from now on (see
    /// [`AssemblerLimits::max_wait`]): a receiver that asks for lost
    /// packets waits a round trip and more for them.
    pub fn set_max_wait(&mut self, wait: Duration) {
        self.limits.max_wait = wait;
    }

    /// Takes one RTP packet of the stream: its sequence number, timestamp,
    /// marker bit and payload (VP8 descriptor and data).
    ///
    /// A refused packet is counted in [`AssemblerStats::packets_discarded`].
    /// To make room, older packets stuck behind a gap may be dropped (a
    /// loss: a key frame is then needed).
    pub fn insert(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), AssembleError> {
        self.stats.packets_received += 1;
        if self.next_request.is_none() && self.need_keyframe && self.highest.is_none() {
            // The first packet starts the wait for the first key frame.
            self.next_request = now.checked_add(self.limits.max_wait);
        }
        let result = self.accept(now, seq, timestamp, marker, payload);
        if result.is_err() {
            self.stats.packets_discarded += 1;
        }
        self.drive(now);
        result
    }

    /// Hands out the next whole frame, in sequence order.
    pub fn poll_frame(&mut self) -> Option<AssembledFrame> {
        let (frame, packets) = self.ready.pop_front()?;
        self.ready_packets -= packets;
        self.ready_bytes -= frame.data.len();
        Some(frame)
    }

    /// Gives up on gaps that have waited long enough and repeats the
    /// key-frame request when it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let gap = self
            .stuck_since
            .and_then(|t| t.checked_add(self.limits.max_wait));
        let request = self.next_request.filter(|_| self.need_keyframe);
        match (gap, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True once for each time a key frame should be requested (send an
    /// RTCP PLI, RFC 4585 §6.3.1).
    pub fn take_keyframe_request(&mut self) -> bool {
        let due = std::mem::take(&mut self.request_pending);
        if due {
            self.stats.keyframe_requests += 1;
        }
        due
    }

    /// The counters so far.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Payload bytes held, waiting or ready.
    fn held_bytes(&self) -> usize {
        self.pending_bytes + self.ready_bytes
    }

    /// Packets held, waiting or ready.
    fn held_packets(&self) -> usize {
        self.pending.len() + self.ready_packets
    }

    fn accept(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), AssembleError> {
        let p = vp8::parse(payload)?;
        let mut ext = match self.highest {
            None => EXT_SEQ_BASE + u64::from(seq),
            // The nearest number with these low 16 bits, either side.
            Some(h) => crate::rtp::extend_seq(h, seq),
        };
        if self.floor.is_some_and(|f| ext <= f) {
            self.late_run += 1;
            if self.late_run < LATE_RUN_RESTART {
                return Err(AssembleError::Late { seq });
            }
            self.restart(now);
            ext = EXT_SEQ_BASE + u64::from(seq);
        }
        self.late_run = 0;
        loop {
            if self.floor.is_some_and(|f| ext <= f) {
                return Err(AssembleError::Late { seq });
            }
            if self.pending.contains_key(&ext) {
                return Err(AssembleError::Duplicate { seq });
            }
            if self.held_packets() < self.limits.max_packets
                && self.held_bytes() + p.data.len() <= self.limits.max_frame_bytes
            {
                break;
            }
            // Full: what waits before this packet is stuck behind a gap (a
            // frame that could go out would have), so it goes first.
            match self.pending.first_key_value() {
                Some((&first, _)) if first < ext => {
                    let end = self.front_group_end();
                    self.drop_before(end);
                    self.declare_loss(now);
                }
                _ => return Err(AssembleError::OverLimit { seq }),
            }
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.pending_bytes += p.data.len();
        self.pending.insert(
            ext,
            Packet {
                timestamp,
                marker,
                starts_frame: p.starts_frame(),
                picture_id: p.picture_id,
                data: p.data.to_vec(),
            },
        );
        Ok(())
    }

    /// Hands out and drops frames until the buffer is stuck, gives up on a
    /// gap that has waited `max_wait`, and raises the key-frame request.
    fn drive(&mut self, now: Instant) {
        // Where the search for the next frame resumes: nothing before a
        // frame just handed out or dropped can go or be dropped (see
        // `next_step`), so dropping many frames stuck behind a gap is one
        // pass over the buffer, not one per frame.
        let mut from = 0;
        loop {
            match self.next_step(from) {
                Some(Step::Emit(span)) => {
                    self.drop_before(Some(span.first));
                    self.emit(span);
                    from = span.last + 1;
                    continue;
                }
                Some(Step::Drop(span)) => {
                    self.drop_span(span);
                    from = span.last + 1;
                    continue;
                }
                // What follows may change the floor and the need for a key
                // frame: the next search starts from the oldest packet.
                None => from = 0,
            }
            let Some(boundary) = self.stuck_boundary() else {
                self.stuck_since = None;
                break;
            };
            let since = *self.stuck_since.get_or_insert(now);
            if since
                .checked_add(self.limits.max_wait)
                .is_none_or(|deadline| now < deadline)
            {
                break;
            }
            match boundary {
                // Nothing waits before the gap: the missing packets are lost.
                Boundary::Gap(first) => {
                    self.floor = Some(first - 1);
                    self.stuck_since = None;
                }
                Boundary::Group(end) => self.drop_before(Some(end)),
            }
            self.declare_loss(now);
        }
        if self.need_keyframe && self.next_request.is_some_and(|t| now >= t) {
            self.request_pending = true;
            self.next_request = now.checked_add(KEYFRAME_REQUEST_INTERVAL);
        }
    }

    /// The first complete frame from `from` on that can go out or must be
    /// dropped.
    ///
    /// This is what a search from the oldest packet finds if `from` follows
    /// the last packet of a frame (the next one starts afresh) and nothing
    /// before it can go out or be dropped. Both hold right after a frame
    /// before `from` went out or was dropped, with nothing else changed: a
    /// frame is dropped only while a key frame is needed, and then every
    /// complete frame goes out or is dropped.
    fn next_step(&self, from: u64) -> Option<Step> {
        let mut open: Option<(u64, u32)> = None; // start and timestamp of the run
        let mut prev: Option<u64> = None;
        for (&ext, p) in self.pending.range(from..) {
            #[cfg(test)]
            self.scanned.set(self.scanned.get() + 1);
            let continues = prev == Some(ext.wrapping_sub(1));
            prev = Some(ext);
            open = if p.starts_frame {
                Some((ext, p.timestamp))
            } else {
                open.filter(|&(_, ts)| continues && ts == p.timestamp)
            };
            let Some((first, _)) = open else { continue };
            if !p.marker {
                continue;
            }
            open = None;
            let span = Span {
                first,
                last: ext,
                keyframe: self.is_key_span(first, ext),
            };
            if span.keyframe {
                return Some(Step::Emit(span));
            }
            if self.need_keyframe {
                return Some(Step::Drop(span));
            }
            if self.floor == Some(first - 1) {
                return Some(Step::Emit(span));
            }
            // Behind a gap: wait for it, but a later key frame may still go.
        }
        None
    }

    /// Whether the frame in `first..=last` is a key frame, judged on its
    /// first six bytes wherever the packets cut them.
    fn is_key_span(&self, first: u64, last: u64) -> bool {
        let mut head = [0u8; 6];
        let mut n = 0;
        for p in self.pending.range(first..=last).map(|(_, p)| p) {
            let take = (head.len() - n).min(p.data.len());
            head[n..n + take].copy_from_slice(&p.data[..take]);
            n += take;
            if n == head.len() {
                break;
            }
        }
        vp8::is_keyframe(&head[..n])
    }

    /// Where to give up when the oldest waiting packets are stuck: `None`
    /// while they may still complete without waiting for anything later.
    fn stuck_boundary(&self) -> Option<Boundary> {
        let &first = self.pending.keys().next()?;
        if let Some(floor) = self.floor
            && first > floor + 1
        {
            return Some(Boundary::Gap(first));
        }
        // The oldest frame is incomplete; it is stuck once a later one has begun.
        self.front_group_end().map(Boundary::Group)
    }

    /// The first packet after the oldest waiting one that belongs to a
    /// later frame (another timestamp, or a frame start).
    fn front_group_end(&self) -> Option<u64> {
        let mut it = self.pending.values();
        let ts = it.next()?.timestamp;
        self.pending
            .iter()
            .skip(1)
            .find(|(_, p)| p.timestamp != ts || p.starts_frame)
            .map(|(&ext, _)| ext)
    }

    /// Drops every waiting packet below `end` (all of them for `None`),
    /// counting their frames as dropped and raising the floor past them.
    fn drop_before(&mut self, end: Option<u64>) {
        let kept = match end {
            Some(end) => self.pending.split_off(&end),
            None => BTreeMap::new(),
        };
        let dropped = std::mem::replace(&mut self.pending, kept);
        if let Some((&last, _)) = dropped.last_key_value() {
            self.floor = Some(self.floor.map_or(last, |f| f.max(last)));
            self.stuck_since = None;
        }
        for p in dropped.into_values() {
            self.discard(p);
        }
    }

    /// Drops one complete frame that cannot be decoded.
    fn drop_span(&mut self, span: Span) {
        let oldest = self.pending.keys().next() == Some(&span.first);
        // One by one: a frame's numbers are consecutive, and splitting the
        // map would move every packet after it.
        for ext in span.first..=span.last {
            if let Some(p) = self.pending.remove(&ext) {
                self.discard(p);
            }
        }
        if oldest {
            self.floor = Some(self.floor.map_or(span.last, |f| f.max(span.last)));
            self.stuck_since = None;
        }
    }

    fn discard(&mut self, p: Packet) {
        self.pending_bytes -= p.data.len();
        self.stats.packets_discarded += 1;
        if self.last_dropped_ts != Some(p.timestamp) {
            self.last_dropped_ts = Some(p.timestamp);
            self.stats.frames_dropped += 1;
        }
    }

    /// Moves the complete frame `span` (the oldest waiting packets) to the
    /// ready queue.
    fn emit(&mut self, span: Span) {
        let rest = self.pending.split_off(&(span.last + 1));
        let packets = std::mem::replace(&mut self.pending, rest);
        let count = packets.len();
        let mut data = Vec::with_capacity(packets.values().map(|p| p.data.len()).sum());
        let mut head = None;
        for p in packets.into_values() {
            self.pending_bytes -= p.data.len();
            data.extend_from_slice(&p.data);
            head.get_or_insert((p.timestamp, p.picture_id));
        }
        let Some((timestamp, picture_id)) = head else {
            return;
        };
        self.ready_packets += count;
        self.ready_bytes += data.len();
        self.ready.push_back((
            AssembledFrame {
                timestamp,
                keyframe: span.keyframe,
                picture_id,
                data,
            },
            count,
        ));
        self.stats.frames_assembled += 1;
        self.floor = Some(span.last);
        self.stuck_since = None;
        if span.keyframe {
            self.need_keyframe = false;
            self.next_request = None;
            self.request_pending = false;
        }
    }

    /// Forgets the numbering and everything waiting; frames ready to poll
    /// stay. The next frame out is a key frame, asked for at once.
    fn restart(&mut self, now: Instant) {
        self.drop_before(None);
        self.floor = None;
        self.highest = None;
        self.stuck_since = None;
        self.late_run = 0;
        self.restarts += 1;
        self.need_keyframe = false;
        self.declare_loss(now);
    }

    /// The decoder has lost a frame: ask for a key frame now, and again
    /// until one comes.
    fn declare_loss(&mut self, now: Instant) {
        if !self.need_keyframe {
            self.need_keyframe = true;
            self.request_pending = true;
            self.next_request = now.checked_add(KEYFRAME_REQUEST_INTERVAL);
        }
    }
}

/// Where stuck packets end.
enum Boundary {
    /// Packets are missing right after the floor; the oldest waiting one is this.
    Gap(u64),
    /// The oldest waiting frame is incomplete; the next frame starts here.
    Group(u64),
}

/// Fuzz entry point: reads `data` as a run of packets and feeds them to an
/// assembler with small limits, checking that it stays within them and
/// hands frames out in sequence order.
///
/// Each packet is 4 bytes — sequence step (i8), timestamp step, flags,
/// length — and then up to 31 bytes of data. Flags: bit 0 marker, bit 1
/// frame start, bit 2 key frame, bits 3-4 time step, bit 5 raw payload
/// (the data is the whole payload, descriptor included), bit 6 run the
/// timer, bit 7 poll.
pub fn fuzz_assemble(data: &[u8]) {
    let limits = AssemblerLimits {
        max_packets: 16,
        max_frame_bytes: 256,
        max_wait: Duration::from_millis(50),
    };
    let mut assembler = FrameAssembler::new(limits);
    let mut now = Instant::now();
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut last_floor = None;
    let mut restarts = 0;
    let mut rest = data;
    while let [step, ts_step, flags, len, tail @ ..] = rest {
        let len = usize::from(len % 32).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        seq = seq.wrapping_add_signed(i16::from(*step as i8));
        ts = ts.wrapping_add(u32::from(*ts_step) * 1500);
        now += [0, 10, 100, 300].map(Duration::from_millis)[usize::from((flags >> 3) & 3)];
        let payload = if flags & 0x20 != 0 {
            body.to_vec()
        } else {
            let start = if flags & 0x02 != 0 { 0x10 } else { 0 };
            let mut p = vec![0x90 | start, 0x80, (seq as u8) & 0x7f];
            if flags & 0x04 != 0 {
                p.extend_from_slice(&[0x50, 0, 0, 0x9d, 0x01, 0x2a]);
            } else {
                p.push(0x51);
            }
            p.extend_from_slice(body);
            p
        };
        let _ = assembler.insert(now, seq, ts, flags & 0x01 != 0, &payload);
        if flags & 0x40 != 0
            && let Some(t) = assembler.poll_timeout()
        {
            now = now.max(t);
            assembler.handle_timeout(now);
        }
        assert!(assembler.held_packets() <= limits.max_packets);
        assert!(assembler.held_bytes() <= limits.max_frame_bytes);
        assert!(
            assembler.floor >= last_floor || assembler.restarts > restarts,
            "floor went back"
        );
        last_floor = assembler.floor;
        restarts = assembler.restarts;
        if flags & 0x80 != 0 {
            while let Some(frame) = assembler.poll_frame() {
                assert!(!frame.data.is_empty());
            }
            let _ = assembler.take_keyframe_request();
        }
    }
    let stats = assembler.stats();
    assert!(stats.packets_discarded <= stats.packets_received);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::vp8::Vp8Packetizer;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// A test frame: a key frame header or an inter frame's P bit, then `n`
    /// bytes naming the frame.
    fn frame(key: bool, id: u8, n: usize) -> Vec<u8> {
        let mut f = if key {
            vec![0x50, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
        } else {
            vec![0x51, 0, 0]
        };
        f.extend(std::iter::repeat_n(id, n));
        f
    }

    /// RTP packets (seq, ts, marker, payload) of `frames`, 3000 ticks apart,
    /// cut into payloads of at most `max` bytes.
    fn packets(first_seq: u16, frames: &[Vec<u8>], max: usize) -> Vec<(u16, u32, bool, Vec<u8>)> {
        let mut packetizer = Vp8Packetizer::new(0);
        let mut seq = first_seq;
        let mut out = vec![];
        for (i, f) in frames.iter().enumerate() {
            let payloads = packetizer.packetize(f, max).unwrap();
            let n = payloads.len();
            for (j, p) in payloads.into_iter().enumerate() {
                out.push((seq, 3000 * i as u32, j + 1 == n, p));
                seq = seq.wrapping_add(1);
            }
        }
        out
    }

    fn feed(a: &mut FrameAssembler, now: Instant, pkts: &[(u16, u32, bool, Vec<u8>)]) {
        for (seq, ts, m, p) in pkts {
            a.insert(now, *seq, *ts, *m, p).unwrap();
        }
    }

    fn drain(a: &mut FrameAssembler) -> Vec<AssembledFrame> {
        std::iter::from_fn(|| a.poll_frame()).collect()
    }

    fn stream() -> Vec<Vec<u8>> {
        vec![
            frame(true, 0, 40),
            frame(false, 1, 20),
            frame(false, 2, 20),
            frame(false, 3, 20),
        ]
    }

    #[test]
    fn in_order_frames_come_out_whole() {
        let frames = stream();
        let pkts = packets(1000, &frames, 16);
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        feed(&mut a, now, &pkts);
        let out = drain(&mut a);
        assert_eq!(out.len(), 4);
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f.data, frames[i]);
            assert_eq!(f.timestamp, 3000 * i as u32);
            assert_eq!(f.keyframe, i == 0);
            assert_eq!(f.picture_id, Some(i as u16));
        }
        assert_eq!(
            a.stats(),
            AssemblerStats {
                packets_received: pkts.len() as u64,
                frames_assembled: 4,
                ..Default::default()
            }
        );
        assert!(!a.take_keyframe_request());
        assert_eq!(a.poll_timeout(), None);
        assert_eq!((a.held_packets(), a.held_bytes()), (0, 0));
    }

    #[test]
    fn reordered_packets_within_and_across_frames() {
        let frames = stream();
        let mut pkts = packets(7, &frames, 16);
        // Within the key frame: last packet first; across frames: frame 2
        // before frame 1.
        let key_len = pkts.iter().take_while(|p| p.1 == 0).count();
        pkts[..key_len].reverse();
        let f1: Vec<_> = pkts.iter().filter(|p| p.1 == 3000).cloned().collect();
        let f2: Vec<_> = pkts.iter().filter(|p| p.1 == 6000).cloned().collect();
        let f3: Vec<_> = pkts.iter().filter(|p| p.1 == 9000).cloned().collect();
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        feed(&mut a, now, &pkts[..key_len]);
        feed(&mut a, now, &f2);
        assert_eq!(drain(&mut a).len(), 1, "frame 2 waits for frame 1");
        feed(&mut a, now + 10 * MS, &f1[1..]);
        feed(&mut a, now + 10 * MS, &f3);
        feed(&mut a, now + 20 * MS, &f1[..1]);
        let out = drain(&mut a);
        assert_eq!(
            out.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [3000, 6000, 9000]
        );
        assert_eq!(out[0].data, frames[1]);
        assert_eq!(a.stats().frames_dropped, 0);
        assert!(!a.take_keyframe_request());
    }

    #[test]
    fn duplicates_and_late_packets_are_refused() {
        let pkts = packets(50, &stream(), 16);
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        let (s, t, m, p) = &pkts[0];
        a.insert(now, *s, *t, *m, p).unwrap();
        assert_eq!(
            a.insert(now, *s, *t, *m, p),
            Err(AssembleError::Duplicate { seq: 50 })
        );
        feed(&mut a, now, &pkts[1..]);
        assert_eq!(drain(&mut a).len(), 4);
        // Already handed out.
        let (s, t, m, p) = &pkts[3];
        assert_eq!(
            a.insert(now, *s, *t, *m, p),
            Err(AssembleError::Late { seq: *s })
        );
        let st = a.stats();
        assert_eq!(st.packets_received, pkts.len() as u64 + 2);
        assert_eq!(st.packets_discarded, 2);
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn malformed_payload_is_refused() {
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        assert_eq!(
            a.insert(now, 1, 0, true, &[0x90]),
            Err(AssembleError::Payload(Vp8PayloadError::Truncated {
                need: 2,
                have: 1
            }))
        );
        assert_eq!(a.stats().packets_discarded, 1);
    }

    /// A lost packet in an inter frame: the frame is dropped once a later
    /// frame has waited `max_wait`, a key frame is asked for at once and
    /// every 500 ms, nothing goes out until it comes, and then it does.
    #[test]
    fn loss_in_an_inter_frame_waits_for_the_next_key_frame() {
        let mut frames = stream();
        frames.push(frame(false, 4, 20));
        frames.push(frame(true, 5, 40));
        frames.push(frame(false, 6, 20));
        let mut pkts = packets(65000, &frames, 16);
        let lost = pkts.iter().position(|p| p.1 == 6000).unwrap() + 1;
        let lost_seq = pkts.remove(lost).0;
        let key2 = pkts.iter().position(|p| p.1 == 15000).unwrap();
        let mut a = FrameAssembler::default();
        let t0 = Instant::now();
        feed(&mut a, t0, &pkts[..key2]);
        assert_eq!(drain(&mut a).len(), 2, "key frame and frame 1");
        assert!(!a.take_keyframe_request());
        let deadline = a.poll_timeout().expect("gap timer");
        assert_eq!(deadline, t0 + 200 * MS);
        a.handle_timeout(t0 + 199 * MS);
        assert!(!a.take_keyframe_request());
        a.handle_timeout(deadline);
        assert!(a.take_keyframe_request());
        assert!(!a.take_keyframe_request(), "once per request");
        assert!(drain(&mut a).is_empty(), "frames 3 and 4 cannot be decoded");
        // The lost packet turning up now is too late.
        let (_, t, m, p) = packets(65000, &frames, 16).remove(lost);
        assert_eq!(
            a.insert(deadline, lost_seq, t, m, &p),
            Err(AssembleError::Late { seq: lost_seq })
        );
        // Repeated while no key frame comes.
        assert_eq!(a.poll_timeout(), Some(deadline + 500 * MS));
        a.handle_timeout(deadline + 500 * MS);
        assert!(a.take_keyframe_request());
        feed(&mut a, deadline + 600 * MS, &pkts[key2..]);
        let out = drain(&mut a);
        assert_eq!(
            out.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [15000, 18000]
        );
        assert!(out[0].keyframe);
        assert_eq!(out[0].data, frames[5]);
        let st = a.stats();
        assert_eq!(st.frames_assembled, 4);
        assert_eq!(st.frames_dropped, 3, "frames 2, 3 and 4");
        assert_eq!(st.keyframe_requests, 2);
        assert_eq!(a.poll_timeout(), None);
        assert!(!a.take_keyframe_request());
    }

    /// A frame lost whole (all its packets) leaves a gap before a complete
    /// frame; that too is given up after `max_wait`.
    #[test]
    fn a_frame_lost_whole_is_noticed() {
        let frames = stream();
        let pkts = packets(10, &frames, 100);
        assert_eq!(pkts.len(), 4);
        let mut a = FrameAssembler::default();
        let t0 = Instant::now();
        feed(&mut a, t0, &pkts[..1]);
        feed(&mut a, t0, &pkts[2..3]);
        assert_eq!(drain(&mut a).len(), 1);
        a.handle_timeout(t0 + 200 * MS);
        assert!(a.take_keyframe_request());
        assert!(drain(&mut a).is_empty());
        assert_eq!(a.stats().frames_dropped, 1);
    }

    /// A key frame completing after a gap goes out at once; what was stuck
    /// before it is dropped, and no key frame is asked for.
    #[test]
    fn a_key_frame_skips_a_gap() {
        let frames = vec![frame(true, 0, 10), frame(false, 1, 10), frame(true, 2, 10)];
        let pkts = packets(0, &frames, 100);
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        feed(&mut a, now, &pkts[..1]);
        feed(&mut a, now, &pkts[2..]);
        let out = drain(&mut a);
        assert_eq!(
            out.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [0, 6000]
        );
        assert!(!a.take_keyframe_request());
        let (s, t, m, p) = &pkts[1];
        assert_eq!(
            a.insert(now, *s, *t, *m, p),
            Err(AssembleError::Late { seq: 1 })
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let frames = stream();
        for first in [65530, 65535, 65534] {
            let pkts = packets(first, &frames, 16);
            assert!(pkts.iter().any(|p| p.0 == 0), "crosses 65535 -> 0");
            let mut a = FrameAssembler::default();
            let now = Instant::now();
            // Deliver in order except that each frame's packets come backwards.
            for ts in (0..4).map(|i| 3000 * i) {
                let mut f: Vec<_> = pkts.iter().filter(|p| p.1 == ts).cloned().collect();
                f.reverse();
                feed(&mut a, now, &f);
            }
            let out = drain(&mut a);
            assert_eq!(out.len(), 4, "first seq {first}");
            for (o, f) in out.iter().zip(&frames) {
                assert_eq!(&o.data, f);
            }
        }
    }

    #[test]
    fn nothing_goes_out_before_the_first_key_frame() {
        let frames = vec![frame(false, 1, 10), frame(false, 2, 10), frame(true, 3, 10)];
        let pkts = packets(300, &frames, 100);
        let mut a = FrameAssembler::default();
        let t0 = Instant::now();
        feed(&mut a, t0, &pkts[..2]);
        assert!(drain(&mut a).is_empty());
        assert_eq!(a.stats().frames_dropped, 2);
        assert_eq!(a.poll_timeout(), Some(t0 + 200 * MS));
        a.handle_timeout(t0 + 200 * MS);
        assert!(a.take_keyframe_request(), "none after max_wait: ask");
        feed(&mut a, t0 + 300 * MS, &pkts[2..]);
        let out = drain(&mut a);
        assert_eq!(out.len(), 1);
        assert!(out[0].keyframe);
    }

    #[test]
    fn a_marker_packet_without_a_start_never_goes_out() {
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        let key = frame(true, 0, 5);
        // S = 0: a frame's tail only.
        let mut tail = vec![0x80, 0x80, 0x00];
        tail.extend_from_slice(&key);
        a.insert(now, 5, 0, true, &tail).unwrap();
        a.handle_timeout(now + Duration::from_secs(5));
        assert!(drain(&mut a).is_empty());
        // A start packet with a marker after it, but not adjacent: not a frame either.
        let mut start = tail.clone();
        start[0] |= 0x10;
        a.insert(now, 7, 3000, false, &start).unwrap();
        a.insert(now, 9, 3000, true, &tail).unwrap();
        assert!(drain(&mut a).is_empty());
    }

    /// A sender that starts its numbering again behind where it was is
    /// followed after a run of late packets, from its next key frame.
    #[test]
    fn a_restarted_sequence_is_followed() {
        let old: Vec<_> = (0..5).map(|i| frame(i == 0, i as u8, 5)).collect();
        let new: Vec<_> = (0..120).map(|i| frame(i % 10 == 0, i as u8, 5)).collect();
        let mut a = FrameAssembler::default();
        let now = Instant::now();
        feed(&mut a, now, &packets(40_000, &old, 100));
        assert_eq!(drain(&mut a).len(), 5);
        let mut late = 0;
        for (i, (s, t, m, p)) in packets(20_000, &new, 100).iter().enumerate() {
            let r = a.insert(now, *s, *t, *m, p);
            late += usize::from(r == Err(AssembleError::Late { seq: *s }));
            // Started over at the 100th: a key frame is asked for at once.
            assert_eq!(a.take_keyframe_request(), i == 99, "{i}");
        }
        assert_eq!(late, 99);
        let out = drain(&mut a);
        assert_eq!(out.len(), 20);
        assert!(out[0].keyframe);
        assert_eq!(out[0].timestamp, 300_000);
    }

    #[test]
    fn a_flood_of_timestamps_is_bounded() {
        let limits = AssemblerLimits {
            max_packets: 32,
            ..Default::default()
        };
        let mut a = FrameAssembler::new(limits);
        let now = Instant::now();
        let mut payload = vec![0x80, 0x80, 0x00];
        payload.extend_from_slice(&frame(false, 1, 100));
        for i in 0..5000u32 {
            // Inter frames' middles, none ever complete.
            let _ = a.insert(now, i as u16, i * 3000, false, &payload);
            assert!(a.held_packets() <= 32);
        }
        assert!(drain(&mut a).is_empty());
        let st = a.stats();
        assert_eq!(st.packets_received, 5000);
        assert!(st.packets_discarded >= 5000 - 32);
    }

    #[test]
    fn frames_over_the_byte_limit_are_dropped() {
        let limits = AssemblerLimits {
            max_frame_bytes: 1000,
            ..Default::default()
        };
        let big = frame(true, 0, 3000);
        let pkts = packets(0, &[big, frame(true, 1, 500)], 200);
        let mut a = FrameAssembler::new(limits);
        let now = Instant::now();
        for (s, t, m, p) in &pkts {
            let _ = a.insert(now, *s, *t, *m, p);
            assert!(a.held_bytes() <= 1000);
        }
        let out = drain(&mut a);
        assert_eq!(out.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [3000]);
        // One payload bigger than everything allowed.
        let mut a = FrameAssembler::new(limits);
        let mut huge = vec![0x10];
        huge.extend_from_slice(&frame(true, 0, 1000));
        assert_eq!(
            a.insert(now, 0, 0, true, &huge),
            Err(AssembleError::OverLimit { seq: 0 })
        );
    }

    /// Unpolled frames count against the limits too.
    #[test]
    fn unpolled_frames_are_bounded() {
        let limits = AssemblerLimits {
            max_packets: 8,
            ..Default::default()
        };
        let frames: Vec<_> = (0..20).map(|i| frame(i == 0, i as u8, 5)).collect();
        let pkts = packets(0, &frames, 100);
        let mut a = FrameAssembler::new(limits);
        let now = Instant::now();
        let refused = pkts
            .iter()
            .filter(|(s, t, m, p)| a.insert(now, *s, *t, *m, p).is_err())
            .count();
        assert_eq!(refused, 12);
        assert_eq!(drain(&mut a).len(), 8);
    }

    /// Complete frames waiting behind a gap, and behind a frame that never
    /// ends, are all dropped when the gap is given up, in one pass over the
    /// buffer: the search for the next frame to drop does not start over
    /// (and walk the unfinished frame again) after each one.
    #[test]
    fn frames_dropped_behind_a_gap_cost_one_pass() {
        let complete = 100;
        let mut frames = vec![frame(true, 0, 5), frame(false, 1, 5), frame(false, 2, 1200)];
        frames.extend((3..3 + complete).map(|i| frame(false, i as u8, 5)));
        let mut pkts = packets(65_500, &frames, 16);
        // Frame 1 is lost, and the end of frame 2.
        pkts.retain(|p| p.1 != 3000 && !(p.1 == 6000 && p.2));
        let unfinished = pkts.iter().filter(|p| p.1 == 6000).count();
        assert!(unfinished > 50, "{unfinished}");
        let mut a = FrameAssembler::default();
        let t0 = Instant::now();
        feed(&mut a, t0, &pkts);
        assert_eq!(drain(&mut a).len(), 1, "the key frame");
        let held = a.held_packets();
        assert_eq!(held, unfinished + complete);

        a.scanned.set(0);
        a.handle_timeout(t0 + 200 * MS);
        assert!(a.take_keyframe_request());
        assert_eq!(a.stats().frames_dropped, complete as u64);
        assert_eq!(a.held_packets(), unfinished);
        // Once finding nothing to do, once dropping what follows the gap;
        // starting over after each drop would be `unfinished * complete`.
        let scanned = a.scanned.get();
        assert!(
            scanned <= 2 * held,
            "{scanned} packets looked at, {held} held"
        );
    }

    #[test]
    fn fuzz_entry_survives_random_input() {
        let mut x: u64 = 0x0123_4567_89AB_CDEF;
        for len in 0..1500 {
            let mut buf = vec![0u8; len % 700];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            fuzz_assemble(&buf);
        }
    }

    /// How one packet of the stream is delivered.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Deliver,
        Lose,
        Duplicate,
        /// Swap with the next packet.
        Swap,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            12 => Just(Fate::Deliver),
            1 => Just(Fate::Lose),
            1 => Just(Fate::Duplicate),
            2 => Just(Fate::Swap),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any arrival order, loss and duplication: no panic, memory within
        /// the limits, and what comes out are real frames, whole, in order.
        #[test]
        fn arbitrary_arrivals(
            sizes in proptest::collection::vec(1usize..120, 1..40),
            key_every in 1usize..10,
            first_seq in any::<u16>(),
            fates in proptest::collection::vec(fate(), 200),
            gaps in proptest::collection::vec(0u64..150, 200),
            max_packets in 4usize..64,
        ) {
            let frames: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| frame(i % key_every == 0, i as u8, n))
                .collect();
            let pkts = packets(first_seq, &frames, 40);
            let mut arrivals = vec![];
            let mut i = 0;
            while i < pkts.len() {
                match fates[i % fates.len()] {
                    Fate::Deliver => arrivals.push(pkts[i].clone()),
                    Fate::Lose => {}
                    Fate::Duplicate => {
                        arrivals.push(pkts[i].clone());
                        arrivals.push(pkts[i].clone());
                    }
                    Fate::Swap if i + 1 < pkts.len() => {
                        arrivals.push(pkts[i + 1].clone());
                        arrivals.push(pkts[i].clone());
                        i += 1;
                    }
                    Fate::Swap => arrivals.push(pkts[i].clone()),
                }
                i += 1;
            }
            let limits = AssemblerLimits { max_packets, max_frame_bytes: 2000, ..Default::default() };
            let mut a = FrameAssembler::new(limits);
            let mut now = Instant::now();
            let mut out = vec![];
            for (k, (s, t, m, p)) in arrivals.iter().enumerate() {
                now += Duration::from_millis(gaps[k % gaps.len()]);
                if let Some(t) = a.poll_timeout() && t <= now {
                    a.handle_timeout(t);
                }
                let _ = a.insert(now, *s, *t, *m, p);
                prop_assert!(a.held_packets() <= max_packets);
                prop_assert!(a.held_bytes() <= 2000);
                out.extend(drain(&mut a));
            }
            // Frames come out in order, whole, and decodable: each is a key
            // frame or the one right after the previous one out.
            let mut prev: Option<usize> = None;
            for f in &out {
                let i = (f.timestamp / 3000) as usize;
                prop_assert_eq!(&f.data, &frames[i]);
                prop_assert!(prev.is_none_or(|p| i > p));
                prop_assert!(f.keyframe || prev == i.checked_sub(1), "frame {} after {:?}", i, prev);
                prev = Some(i);
            }
            let st = a.stats();
            prop_assert_eq!(st.frames_assembled, out.len() as u64);
            prop_assert_eq!(st.packets_received, arrivals.len() as u64);
            // With every packet delivered in order, every frame comes out.
            if fates.iter().take(pkts.len()).all(|f| matches!(f, Fate::Deliver | Fate::Duplicate))
                && pkts.len() <= fates.len()
            {
                prop_assert_eq!(out.len(), frames.len());
            }
        }
    }
}
