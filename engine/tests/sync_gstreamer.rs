//! Lip sync against an independent implementation: GStreamer's `rtpbin`
//! sends Opus and VP8 from one live pipeline, with its Sender Reports on
//! both streams, over UDP on 127.0.0.1, and [`AvSync`] must line a frame
//! up with the audio captured with it.
//!
//! GStreamer's payloaders stamp a packet with the offset they are given
//! plus its capture's running time on the stream's RTP clock, and every
//! element of one pipeline shares the running time; so audio at
//! `A + 48 000 t` and video at `V + 90 000 t` were captured together.
//! When that audio plays at P, AvSync must give P for the frame, from
//! GStreamer's SRs as we parse them: for every pairing of an audio SR with
//! a video SR, not only the latest. A video SR moved half a second later
//! must move the frame by as much.
//!
//! What GStreamer's SRs say (rtpsource.c, gstrtpsession.c): with
//! `rtcp-sync-send-time` (the default) an SR pairs the wallclock with the
//! RTP time of what leaves the sink then, that is of the capture a
//! pipeline latency earlier. The latency is the pipeline's, the same for
//! both sessions, so the pairing of the streams is that of their capture.
//!
//! Needs `gst-launch-1.0` and plugins-good (`cargo xtask setup`); never
//! skipped. Nothing here depends on timing: the one wait is for enough
//! SRs, with a generous deadline only to fail instead of hanging.

mod gst_support;

use gst_support::{DEADLINE, Gst, Scratch, require_gstreamer};
use sotto_engine::call::sync::AvSync;
use sotto_engine::rtcp::RtcpItem;
use sotto_engine::rtp::{OPUS_CLOCK_RATE, OPUS_PAYLOAD_TYPE, ReceiverStats, SenderClock};
use sotto_engine::video::vp8::{VIDEO_CLOCK_RATE, VP8_PAYLOAD_TYPE};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// The payloaders' RTP timestamp offsets: the audio's wraps half a second
/// in and the video's a second in, so the reading of SRs is checked across
/// the wrap too. (`u32::MAX` itself would ask for a random offset.)
const AUDIO_OFFSET: u32 = u32::MAX - OPUS_CLOCK_RATE / 2;
const VIDEO_OFFSET: u32 = u32::MAX - VIDEO_CLOCK_RATE;
/// SRs wanted per stream: pairings of several SRs each, sent at different
/// times on different threads, are what shows the streams share one clock.
const REPORTS: usize = 4;
/// Ask each session for an SR about every 200 ms (RFC 3550's 5 s minimum
/// would make the test slow, not different).
const RTCP_MIN_INTERVAL_NS: u64 = 200_000_000;
/// One second of NTP time (32.32 fixed point).
const NTP_SECOND: u64 = 1 << 32;

/// How far AvSync's answer may be from exact: rounding, not timing.
/// `rtpbasepayload` truncates a capture's running time to whole ticks for
/// a packet's timestamp, and an SR's RTP time is that of the stream's
/// latest packet moved on, again truncated, to the report's running time
/// (`rtp_source_get_new_sr`, rtpsource.c): each SR is within two ticks of
/// exact, and a frame's due time mixes one audio and one video SR. With
/// `ntp-time-source=clock-time` an SR's NTP time and its running time are
/// one reading of the pipeline clock (`get_current_times`,
/// gstrtpsession.c); the default, the realtime clock, is a second reading,
/// and being descheduled between the two would add to the error.
fn tolerance() -> Duration {
    let ticks =
        |n: u32, rate: u32| Duration::from_nanos(u64::from(n) * 1_000_000_000 / u64::from(rate));
    // And a microsecond for the floating point in between.
    ticks(2, OPUS_CLOCK_RATE) + ticks(2, VIDEO_CLOCK_RATE) + Duration::from_micros(1)
}

/// The sending pipeline: live audio (Opus, session 0) and live video (VP8,
/// session 1) into one `rtpbin`, RTP of both to `rtp_port` and RTCP of
/// both to `rtcp_port`. Ticks give the audio something to encode.
fn pipeline(rtp_port: u16, rtcp_port: u16) -> String {
    let interval = format!("rtcp-min-interval={RTCP_MIN_INTERVAL_NS}");
    let udp = |port| format!("udpsink host=127.0.0.1 port={port}");
    let rtcp = format!("{} sync=false async=false", udp(rtcp_port));
    format!(
        "rtpbin name=rtpbin ntp-time-source=clock-time \
         rtpsession0::{interval} rtpsession1::{interval} \
         audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate={OPUS_CLOCK_RATE},channels=1 \
         ! opusenc ! rtpopuspay pt={OPUS_PAYLOAD_TYPE} timestamp-offset={AUDIO_OFFSET} \
         ! rtpbin.send_rtp_sink_0 \
         rtpbin.send_rtp_src_0 ! {} \
         rtpbin.send_rtcp_src_0 ! {rtcp} \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 ! rtpvp8pay pt={VP8_PAYLOAD_TYPE} timestamp-offset={VIDEO_OFFSET} \
         ! rtpbin.send_rtp_sink_1 \
         rtpbin.send_rtp_src_1 ! {} \
         rtpbin.send_rtcp_src_1 ! {rtcp}",
        udp(rtp_port),
        udp(rtp_port),
    )
}

/// One stream as received.
struct Stream {
    payload_type: u8,
    /// The first packet's RTP timestamp, and how long after the launch it
    /// came.
    first: (u32, Duration),
    /// The latest packet's RTP timestamp.
    last: u32,
    stats: ReceiverStats,
}

/// Everything GStreamer sent, by SSRC.
#[derive(Default)]
struct Received {
    streams: BTreeMap<u32, Stream>,
    /// The SRs' clocks, in the order they came.
    reports: BTreeMap<u32, Vec<SenderClock>>,
}

impl Received {
    fn on_rtp(&mut self, datagram: &[u8], since_launch: Duration) {
        let p = sotto_engine::rtp::parse(datagram).expect("GStreamer's RTP parses");
        let h = &p.header;
        let rate = match h.payload_type {
            OPUS_PAYLOAD_TYPE => OPUS_CLOCK_RATE,
            VP8_PAYLOAD_TYPE => VIDEO_CLOCK_RATE,
            pt => panic!("payload type {pt} was not asked for"),
        };
        let s = self.streams.entry(h.ssrc).or_insert_with(|| Stream {
            payload_type: h.payload_type,
            first: (h.timestamp, since_launch),
            last: h.timestamp,
            stats: ReceiverStats::new(rate),
        });
        assert_eq!(s.payload_type, h.payload_type, "one SSRC per stream");
        s.last = h.timestamp;
        s.stats.on_packet(Instant::now(), h);
    }

    fn on_rtcp(&mut self, datagram: &[u8]) {
        let items = sotto_engine::rtcp::parse(datagram).expect("GStreamer's RTCP parses");
        for item in items {
            let RtcpItem::SenderInfo {
                ssrc,
                ntp_time,
                rtp_time,
                ..
            } = item
            else {
                continue;
            };
            self.reports
                .entry(ssrc)
                .or_default()
                .push(SenderClock { ntp_time, rtp_time });
            // An SR can overtake its stream's first packet (the RTP waits in
            // udpsink for its send time): then only the list keeps it.
            if let Some(s) = self.streams.get_mut(&ssrc) {
                s.stats.on_sender_report(Instant::now(), ntp_time, rtp_time);
            }
        }
    }

    /// The stream with `payload_type`, its SSRC and its SRs.
    fn stream(&self, payload_type: u8) -> Option<(u32, &Stream, &[SenderClock])> {
        let (&ssrc, s) = self
            .streams
            .iter()
            .find(|(_, s)| s.payload_type == payload_type)?;
        let reports = self.reports.get(&ssrc).map_or(&[][..], Vec::as_slice);
        Some((ssrc, s, reports))
    }

    fn enough(&self) -> bool {
        [OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE]
            .iter()
            .all(|&pt| self.stream(pt).is_some_and(|(_, _, r)| r.len() >= REPORTS))
    }
}

/// Reads what is waiting in `sock`, handing each datagram to `on`.
fn drain(sock: &UdpSocket, mut on: impl FnMut(&[u8])) {
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => on(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Runs the pipeline until each stream has had [`REPORTS`] SRs.
fn receive_from_gstreamer() -> Received {
    require_gstreamer(&[
        "rtpbin",
        "audiotestsrc",
        "opusenc",
        "rtpopuspay",
        "videotestsrc",
        "vp8enc",
        "rtpvp8pay",
    ]);
    let scratch = Scratch::new("sync-gst");
    let bind = || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let port = s.local_addr().unwrap().port();
        (s, port)
    };
    let ((rtp, rtp_port), (rtcp, rtcp_port)) = (bind(), bind());
    let launched = Instant::now();
    let mut gst = Gst::launch(&pipeline(rtp_port, rtcp_port), scratch.path("stderr"));
    let mut received = Received::default();
    while !received.enough() {
        assert!(
            !gst.exited(),
            "gst-launch-1.0 ended early:\n{}",
            gst.stderr()
        );
        assert!(
            launched.elapsed() < DEADLINE,
            "SRs by SSRC after {DEADLINE:?}: {:?}\n{}",
            received
                .reports
                .iter()
                .map(|(ssrc, r)| (ssrc, r.len()))
                .collect::<Vec<_>>(),
            gst.stderr()
        );
        drain(&rtp, |d| received.on_rtp(d, launched.elapsed()));
        drain(&rtcp, |d| received.on_rtcp(d));
        std::thread::sleep(Duration::from_millis(5));
    }
    received
}

/// `due` less `expected`, signed, in seconds.
fn error(due: Instant, expected: Instant) -> f64 {
    match due.checked_duration_since(expected) {
        Some(late) => late.as_secs_f64(),
        None => -(expected - due).as_secs_f64(),
    }
}

#[test]
fn a_frame_is_due_when_the_audio_captured_with_it_plays() {
    let r = receive_from_gstreamer();
    let (audio_ssrc, audio, audio_reports) = r.stream(OPUS_PAYLOAD_TYPE).unwrap();
    let (video_ssrc, video, video_reports) = r.stream(VP8_PAYLOAD_TYPE).unwrap();
    assert_eq!(r.streams.len(), 2, "one SSRC per stream");
    assert_eq!(
        r.reports.keys().copied().collect::<Vec<_>>(),
        [audio_ssrc.min(video_ssrc), audio_ssrc.max(video_ssrc)],
        "SRs on exactly the two streams"
    );
    for (ssrc, reports) in [(audio_ssrc, audio_reports), (video_ssrc, video_reports)] {
        for c in reports {
            println!(
                "SR {ssrc:#010x}: NTP {:.6} s, RTP {}",
                c.ntp_time as f64 / NTP_SECOND as f64,
                c.rtp_time
            );
        }
        assert!(
            reports.windows(2).all(|w| w[0].ntp_time < w[1].ntp_time),
            "{ssrc:#010x}: NTP times rise"
        );
    }
    // The offsets were applied and the running time starts with the
    // pipeline: each stream's first packet was captured no later than it
    // came, counted from the launch.
    for (s, offset, rate) in [
        (audio, AUDIO_OFFSET, OPUS_CLOCK_RATE),
        (video, VIDEO_OFFSET, VIDEO_CLOCK_RATE),
    ] {
        let (ts, came) = s.first;
        let captured =
            Duration::from_secs_f64(f64::from(ts.wrapping_sub(offset)) / f64::from(rate));
        println!(
            "payload type {}: first packet captured at running time {captured:?}, came {came:?} after the launch",
            s.payload_type
        );
        assert!(
            captured <= came,
            "payload type {}: RTP timestamp {ts} is not offset {offset} plus the running time",
            s.payload_type
        );
    }
    assert_eq!(audio.stats.sender_clock(), audio_reports.last().copied());
    assert_eq!(video.stats.sender_clock(), video_reports.last().copied());

    // Instants captured together on both clocks, in whole milliseconds (48
    // and 90 ticks): around the first packets and the latest.
    let ms = |ts: u32, offset: u32, rate: u32| ts.wrapping_sub(offset) / (rate / 1000);
    let moments = [
        ms(audio.first.0, AUDIO_OFFSET, OPUS_CLOCK_RATE),
        ms(audio.last, AUDIO_OFFSET, OPUS_CLOCK_RATE),
        ms(video.last, VIDEO_OFFSET, VIDEO_CLOCK_RATE),
    ];
    let heard = Instant::now();
    let due = |a: SenderClock, v: SenderClock, t_ms: u32| {
        let mut sync = AvSync::new(OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE);
        sync.set_clocks(Some(a), Some(v));
        sync.on_audio_played(
            heard,
            AUDIO_OFFSET.wrapping_add(t_ms * (OPUS_CLOCK_RATE / 1000)),
        );
        sync.render_at(VIDEO_OFFSET.wrapping_add(t_ms * (VIDEO_CLOCK_RATE / 1000)))
            .expect("both clocks and the audio played are known")
    };
    let tolerance = tolerance().as_secs_f64();
    let mut worst: f64 = 0.0;
    for &a in audio_reports {
        for &v in video_reports {
            for t_ms in moments {
                let e = error(due(a, v, t_ms), heard);
                assert!(
                    e.abs() <= tolerance,
                    "audio SR {a:x?}, video SR {v:x?}, running time {t_ms} ms: \
                     the frame is due {:.1} µs off the audio (tolerance {:.1} µs)",
                    e * 1e6,
                    tolerance * 1e6
                );
                worst = worst.max(e.abs());
            }
        }
    }
    println!(
        "{} pairings of SRs at {} instants: worst {:.1} µs (tolerance {:.1} µs)",
        audio_reports.len() * video_reports.len(),
        moments.len(),
        worst * 1e6,
        tolerance * 1e6
    );

    // The test can fail: the video's SR told half a second later moves the
    // frame half a second later.
    let (a, v) = (
        *audio_reports.last().unwrap(),
        *video_reports.last().unwrap(),
    );
    let later = SenderClock {
        ntp_time: v.ntp_time + NTP_SECOND / 2,
        ..v
    };
    for t_ms in moments {
        let e = error(due(a, later, t_ms), heard + Duration::from_millis(500));
        assert!(e.abs() <= tolerance, "shifted SR: {:.1} µs off", e * 1e6);
    }
}
