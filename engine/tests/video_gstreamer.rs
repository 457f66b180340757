//! VP8 over RTP against an independent implementation: GStreamer's
//! `rtpvp8pay`/`rtpvp8depay`, with libvpx (`vp8enc`/`vp8dec`) making and
//! checking the frames, over UDP on 127.0.0.1.
//!
//! - GStreamer sends 60 frames of a moving pattern; our frame assembler must
//!   put every one back together, key frames where libvpx put them.
//! - We packetize those same frames and send them to GStreamer, which must
//!   decode them to exactly the pictures `vp8dec` makes from the encoder's
//!   own output (a `tee` in the sending pipeline decodes that reference).
//! - We send them again to `rtpbin`, retransmission on, leaving out a
//!   packet of two inter frames: GStreamer must ask for exactly those (RFC
//!   4585 NACK), and the copies from our `RetransmitHistory` must make
//!   every picture decode exactly as well.
//!
//! Needs `gst-launch-1.0` and plugins-good (`cargo xtask setup`); never
//! skipped. Waits are for readiness, with generous deadlines only to fail
//! instead of hanging: nothing here depends on timing, but for the jitter
//! buffer's wait for a lost packet (its latency, two seconds: many times
//! what a request and its answer take on loopback, even under load).

mod gst_support;

use gst_support::{DEADLINE, Gst, Scratch, free_udp_port, require_gstreamer};
use sotto_engine::rtcp::RtcpItem;
use sotto_engine::rtp::retransmit::{MIN_HISTORY, RetransmitHistory};
use sotto_engine::video::assembler::{AssembledFrame, FrameAssembler};
use sotto_engine::video::vp8::{VIDEO_CLOCK_RATE, VP8_PAYLOAD_TYPE, Vp8Packetizer, is_keyframe};
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const FRAMES: usize = 60;
const KEYFRAME_DISTANCE: usize = 30;
const WIDTH: usize = 320;
const HEIGHT: usize = 240;
/// One decoded I420 picture.
const PICTURE_BYTES: usize = WIDTH * HEIGHT * 3 / 2;
/// 30 frames/s at the 90 kHz RTP clock.
const TICKS_PER_FRAME: u32 = VIDEO_CLOCK_RATE / 30;
/// Our payload size limit when sending (descriptor included).
const MAX_PAYLOAD: usize = 500;
/// A moving zone plate at 600 kbit/s: frames from 40 bytes to 24 kB, so
/// from one packet to forty. (The ball pattern's frames are all under
/// 800 bytes: only key frames would span two packets.)
const SOURCE: &str = "pattern=zone-plate kx2=20 ky2=20 kt=1";
const BITRATE: u32 = 600_000;

/// What only the video tests ask of a pipeline.
impl Gst {
    /// Waits until the pipeline's `udpsrc` has bound `port`, then gives a
    /// socket sending to it and our stream's numbering.
    fn our_sender(&mut self, port: u16) -> (UdpSocket, OurStream) {
        self.wait_bound(port);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(("127.0.0.1", port)).unwrap();
        (sock, OurStream::new())
    }

    /// Waits for `pictures` decoded pictures in `out`, calling `meanwhile`
    /// (which must not block long) between looks.
    fn wait_decoded(&mut self, out: &Path, pictures: usize, mut meanwhile: impl FnMut()) {
        let deadline = Instant::now() + DEADLINE;
        while file_len(out) < pictures * PICTURE_BYTES {
            assert!(
                !self.exited(),
                "gst-launch-1.0 ended early:\n{}",
                self.stderr()
            );
            assert!(
                Instant::now() < deadline,
                "GStreamer decoded {} of {pictures} frames:\n{}",
                file_len(out) / PICTURE_BYTES,
                self.stderr()
            );
            meanwhile();
        }
    }
}

/// What GStreamer sent and what we made of it.
struct Received {
    frames: Vec<AssembledFrame>,
    /// RTP packets per frame, in order.
    packets_per_frame: Vec<usize>,
    /// `vp8dec`'s pictures of the encoder's own output, I420, one after another.
    reference: Vec<u8>,
}

/// Runs the GStreamer sender once for both tests: encode, payload with
/// `rtpvp8pay` to our socket, and decode the same encoded frames to a file.
fn received() -> &'static Received {
    static RECEIVED: OnceLock<Received> = OnceLock::new();
    RECEIVED.get_or_init(receive_from_gstreamer)
}

fn receive_from_gstreamer() -> Received {
    require_gstreamer(&[
        "videotestsrc",
        "vp8enc",
        "vp8dec",
        "rtpvp8pay",
        "rtpvp8depay",
        "rtpbin",
    ]);
    let scratch = Scratch::new("video-gst-send");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let reference = scratch.path("reference.i420");
    let mut gst = Gst::launch(
        &format!(
            "videotestsrc num-buffers={FRAMES} {SOURCE} \
             ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=30/1 \
             ! vp8enc deadline=1 keyframe-max-dist={KEYFRAME_DISTANCE} target-bitrate={BITRATE} \
             ! tee name=t \
             t. ! queue ! rtpvp8pay mtu=600 picture-id-mode=15-bit \
             ! udpsink host=127.0.0.1 port={port} \
             t. ! queue ! vp8dec ! video/x-raw,format=I420 ! filesink location={}",
            reference.display()
        ),
        scratch.path("stderr"),
    );

    let mut assembler = FrameAssembler::default();
    let mut frames = vec![];
    let mut packets_per_frame = vec![];
    let mut in_frame = 0;
    let mut ssrc = None;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + DEADLINE;
    while frames.len() < FRAMES {
        assert!(
            Instant::now() < deadline,
            "timed out with {} frames",
            frames.len()
        );
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            // Quiet: fine while GStreamer runs, the end if it has finished.
            Err(_) if gst.exited() => break,
            Err(_) => continue,
        };
        assert!(n <= 600, "rtpvp8pay mtu=600 sent {n} bytes");
        let p = sotto_engine::rtp::parse(&buf[..n]).unwrap();
        assert_eq!(p.header.payload_type, VP8_PAYLOAD_TYPE);
        assert_eq!(*ssrc.get_or_insert(p.header.ssrc), p.header.ssrc);
        let h = &p.header;
        let now = Instant::now();
        assembler
            .insert(now, h.sequence_number, h.timestamp, h.marker, p.payload)
            .unwrap_or_else(|e| panic!("packet {} refused: {e}", h.sequence_number));
        assembler.handle_timeout(now);
        in_frame += 1;
        while let Some(f) = assembler.poll_frame() {
            frames.push(f);
            packets_per_frame.push(std::mem::take(&mut in_frame));
        }
    }
    assert_eq!(frames.len(), FRAMES, "stats: {:?}", assembler.stats());
    assert!(!assembler.take_keyframe_request(), "no loss on loopback");
    let stats = assembler.stats();
    assert_eq!(stats.frames_assembled, FRAMES as u64);
    assert_eq!((stats.packets_discarded, stats.frames_dropped), (0, 0));

    gst.wait();
    let reference = std::fs::read(&reference).unwrap();
    assert_eq!(
        reference.len(),
        FRAMES * PICTURE_BYTES,
        "vp8dec decoded {} pictures of the encoder's output",
        reference.len() as f64 / PICTURE_BYTES as f64
    );
    Received {
        frames,
        packets_per_frame,
        reference,
    }
}

/// Width and height from a key frame's header (RFC 6386 §9.1: 14 bits
/// each, little-endian, after the start code).
fn keyframe_size(frame: &[u8]) -> (u16, u16) {
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    (w, h)
}

#[test]
fn gstreamer_sends_and_the_assembler_rebuilds_every_frame() {
    let r = received();
    let frames = &r.frames;
    assert_eq!(frames.len(), FRAMES);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.keyframe, is_keyframe(&f.data), "frame {i}");
    }
    for i in [0, KEYFRAME_DISTANCE] {
        assert!(frames[i].keyframe, "libvpx puts a key frame at {i}");
        assert_eq!(
            keyframe_size(&frames[i].data),
            (WIDTH as u16, HEIGHT as u16)
        );
    }
    // One picture each, in order: PictureIDs count up (15 bits) and the
    // RTP timestamps rise.
    for w in frames.windows(2) {
        let (a, b) = (w[0].picture_id.unwrap(), w[1].picture_id.unwrap());
        assert_eq!(b, (a + 1) & 0x7fff);
        assert!(b_after_a(w[0].timestamp, w[1].timestamp));
    }
    // The test means something: many frames were cut into several packets.
    let cut = r.packets_per_frame.iter().filter(|&&n| n > 2).count();
    assert!(cut >= FRAMES / 3, "{:?}", r.packets_per_frame);
}

fn b_after_a(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < u32::MAX / 2
}

/// Sends our packetization of the frames to GStreamer one frame at a time,
/// waiting for each decoded picture: the socket never overflows and the
/// order of events is fixed.
#[test]
fn we_send_and_gstreamer_decodes_every_frame_bit_exactly() {
    let r = received();
    let scratch = Scratch::new("video-gst-recv");
    let out = scratch.path("out.i420");
    let port = free_udp_port();
    let mut gst = Gst::launch(
        &format!(
            "udpsrc address=127.0.0.1 port={port} caps={} ! {}",
            rtp_caps(),
            decode_to(&out)
        ),
        scratch.path("stderr"),
    );
    let (sock, mut stream) = gst.our_sender(port);
    let mut sent_packets = 0;
    for (i, frame) in r.frames.iter().enumerate() {
        let ts = FIRST_TIMESTAMP.wrapping_add(i as u32 * TICKS_PER_FRAME);
        for p in stream.packetize(&frame.data, ts) {
            sock.send(&p.datagram).unwrap();
            sent_packets += 1;
        }
        gst.wait_decoded(&out, i + 1, || std::thread::sleep(Duration::from_millis(5)));
    }
    assert!(
        sent_packets > 3 * FRAMES,
        "frames were cut into several packets"
    );
    drop(gst);
    assert_decoded_bit_exactly(&out, &r.reference);
}

/// Our sender side of RFC 4585 generic NACK against GStreamer's `rtpbin`
/// (`rtpjitterbuffer` asks, `rtpsession` sends the NACK as AVPF early
/// feedback): we leave out the middle packet of one inter frame in each
/// group of pictures, and every picture must still decode bit-exactly,
/// which it can only do with the packet we sent again from our
/// [`RetransmitHistory`]: the original datagram, same SSRC and sequence
/// number (no RFC 4588 RTX).
///
/// Sent one frame at a time as above, so GStreamer's guess of when the
/// next packet is due (`rtx-next-seqnum`, set on the jitter buffer `rtpbin`
/// makes) is turned off: it would ask for packets not sent yet. The RTP timestamps follow the clock rather than
/// the frame rate, as a live sender's do: the jitter buffer's deadline for
/// a packet (its latency, generous here) then runs from its arrival
/// whatever the pace, and a request gets out in time.
#[test]
fn gstreamer_asks_for_lost_packets_and_we_send_them_again() {
    let r = received();
    let scratch = Scratch::new("video-gst-nack");
    let out = scratch.path("out.i420");
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtcp.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let rtcp_port = rtcp.local_addr().unwrap().port();
    let port = free_udp_port();
    let mut gst = Gst::launch(
        &format!(
            "rtpbin name=rtpbin do-retransmission=true rtp-profile=avpf latency=2000 \
             rtpjitterbuffer0::rtx-next-seqnum=false \
             udpsrc address=127.0.0.1 port={port} caps={} ! rtpbin.recv_rtp_sink_0 \
             rtpbin.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={rtcp_port} sync=false async=false \
             rtpbin. ! {}",
            rtp_caps(),
            decode_to(&out)
        ),
        scratch.path("stderr"),
    );
    let (sock, mut stream) = gst.our_sender(port);
    let mut history = RetransmitHistory::new(MIN_HISTORY);
    let (mut dropped, mut asked) = (vec![], vec![]);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for (i, frame) in r.frames.iter().enumerate() {
        let ticks = start.elapsed().as_secs_f64() * f64::from(VIDEO_CLOCK_RATE);
        let packets = stream.packetize(&frame.data, FIRST_TIMESTAMP.wrapping_add(ticks as u32));
        // The first inter frame of its group cut into three packets or more:
        // later packets of the frame show the gap at once.
        let drop_at =
            (!frame.keyframe && packets.len() >= 3 && dropped.len() == i / KEYFRAME_DISTANCE)
                .then_some(packets.len() / 2);
        for (j, p) in packets.into_iter().enumerate() {
            if drop_at == Some(j) {
                dropped.push(p.seq);
            } else {
                sock.send(&p.datagram).unwrap();
            }
            history.store(p.seq, p.datagram, p.payload);
        }
        gst.wait_decoded(&out, i + 1, || {
            let Ok(n) = rtcp.recv(&mut buf) else { return };
            for item in sotto_engine::rtcp::parse(&buf[..n]).unwrap() {
                let RtcpItem::Nack { media_ssrc, lost } = item else {
                    continue;
                };
                assert_eq!(media_ssrc, OurStream::SSRC);
                for seq in lost {
                    asked.push(seq);
                    // Once: nothing is lost on loopback. GStreamer asks
                    // again if the copy has not come 40 ms after asking
                    // (its retry timeout), which load can cause: refused.
                    let now = Instant::now();
                    if let Some(p) = history.resend(now, seq, DEADLINE) {
                        sock.send(&p.datagram).unwrap();
                        history.on_sent(now, seq);
                    }
                }
            }
        });
    }
    drop(gst);
    println!(
        "dropped {dropped:?}; GStreamer asked for {asked:?}; took {:?}",
        start.elapsed()
    );
    assert_eq!(
        dropped.len(),
        FRAMES / KEYFRAME_DISTANCE,
        "a drop per group"
    );
    assert_decoded_bit_exactly(&out, &r.reference);
    let distinct: BTreeSet<u16> = asked.iter().copied().collect();
    assert_eq!(
        distinct,
        dropped.iter().copied().collect(),
        "GStreamer asks for what is missing"
    );
    assert_eq!(history.resent(), dropped.len() as u64);
    assert_eq!(history.refused(), (asked.len() - dropped.len()) as u64);
}

/// One RTP packet of ours.
struct Packet {
    seq: u16,
    datagram: Vec<u8>,
    /// Its payload's length.
    payload: usize,
}

/// Our VP8 stream: [`Vp8Packetizer`] and the RTP sequence numbers,
/// starting just before they wrap.
struct OurStream {
    packetizer: Vp8Packetizer,
    seq: u16,
}

/// Just before the RTP timestamp wraps.
const FIRST_TIMESTAMP: u32 = 0xFFFF_0000;

impl OurStream {
    const SSRC: u32 = 0x5077_0001;

    fn new() -> Self {
        Self {
            packetizer: Vp8Packetizer::new(0x1234),
            seq: 0xFFF0,
        }
    }

    /// The RTP packets of the next frame, at RTP timestamp `ts`.
    fn packetize(&mut self, frame: &[u8], ts: u32) -> Vec<Packet> {
        let payloads = self.packetizer.packetize(frame, MAX_PAYLOAD).unwrap();
        let last = payloads.len() - 1;
        let mut packets = Vec::with_capacity(payloads.len());
        for (j, payload) in payloads.iter().enumerate() {
            assert!(payload.len() <= MAX_PAYLOAD);
            let datagram = rtp_packet(Self::SSRC, self.seq, ts, j == last, payload);
            let parsed = sotto_engine::rtp::parse(&datagram).unwrap();
            assert_eq!(parsed.payload, &payload[..]);
            packets.push(Packet {
                seq: self.seq,
                datagram,
                payload: payload.len(),
            });
            self.seq = self.seq.wrapping_add(1);
        }
        packets
    }
}

/// The caps of our stream for GStreamer, which has no SDP to learn them from.
fn rtp_caps() -> String {
    format!(
        "application/x-rtp,media=video,clock-rate={VIDEO_CLOCK_RATE},encoding-name=VP8,payload={VP8_PAYLOAD_TYPE}"
    )
}

/// The end of a receiving pipeline: depayload, decode and write the
/// pictures to `out` as soon as they come.
fn decode_to(out: &Path) -> String {
    format!(
        "rtpvp8depay ! vp8dec ! video/x-raw,format=I420 \
         ! filesink location={} buffer-mode=unbuffered sync=false",
        out.display()
    )
}

/// Checks that `out` holds the reference pictures, bit for bit.
fn assert_decoded_bit_exactly(out: &Path, reference: &[u8]) {
    let decoded = std::fs::read(out).unwrap();
    assert_eq!(decoded.len(), FRAMES * PICTURE_BYTES);
    for i in 0..FRAMES {
        let at = i * PICTURE_BYTES..(i + 1) * PICTURE_BYTES;
        assert!(
            decoded[at.clone()] == reference[at],
            "picture {i} differs from vp8dec's decode of the encoder's output"
        );
    }
}

/// A minimal RFC 3550 header (V = 2, no CSRC, no extension) and `payload`.
fn rtp_packet(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, VP8_PAYLOAD_TYPE | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| m.len() as usize)
}
