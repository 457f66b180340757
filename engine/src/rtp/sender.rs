//! The sending side of one RTP stream: sequence numbers, timestamps, marker.

use super::{OPUS_CLOCK_RATE, RtpError};
use rtc_rtp::header::Header;
use rtc_shared::marshal::{Marshal, MarshalSize};
use std::time::{Duration, Instant};

/// Numbers outgoing packets of one SSRC.
///
/// The marker bit is set on the first packet of a talkspurt (RFC 3551 §4.1),
/// i.e. the first packet and the first after [`RtpSender::skip`] (DTX silence).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    talkspurt_start: bool,
    packets_sent: u32,
    octets_sent: u32,
    clock_rate: u32,
    /// The latest media sent, as (capture instant, RTP timestamp): where
    /// SRs extrapolate their RTP time from.
    captured: Option<(Instant, u32)>,
}

impl RtpSender {
    /// A sender; `initial_seq` and `initial_ts` should be random (RFC 3550 §5.1).
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        initial_seq: u16,
        initial_ts: u32,
    ) -> Result<Self, RtpError> {
        if payload_type > 127 {
            return Err(RtpError::BadPayloadType(payload_type));
        }
        Ok(Self {
            ssrc,
            payload_type,
            seq: initial_seq,
            timestamp: initial_ts,
            talkspurt_start: true,
            packets_sent: 0,
            octets_sent: 0,
            clock_rate: OPUS_CLOCK_RATE,
            captured: None,
        })
    }

    /// The same with another RTP clock rate (90 kHz for video).
    pub fn with_clock_rate(mut self, clock_rate: u32) -> Self {
        self.clock_rate = clock_rate;
        self
    }

    /// This stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// This stream's payload type.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// The RTP clock rate (48 kHz for Opus, 90 kHz for video).
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Sequence number the next packet gets.
    pub fn next_sequence_number(&self) -> u16 {
        self.seq
    }

    /// Packets sent so far (for the SR sender-info block).
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent so far (for the SR sender-info block).
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// Records that the media at RTP `timestamp` was captured at `at`:
    /// the anchor from which [`rtp_time_at`](Self::rtp_time_at)
    /// extrapolates. A receiver lines our streams up by it (lip sync), so
    /// it is the capture instant, not when the packet was built.
    pub fn on_captured(&mut self, at: Instant, timestamp: u32) {
        self.captured = Some((at, timestamp));
    }

    /// The RTP time at `now` on this stream's clock (RFC 3550 §6.4.1: an
    /// SR's RTP timestamp is the instant of its NTP timestamp in RTP
    /// units), extrapolated from the latest capture recorded; the next
    /// packet's timestamp when none was.
    pub fn rtp_time_at(&self, now: Instant) -> u32 {
        let Some((at, ts)) = self.captured else {
            return self.timestamp;
        };
        let ticks = |d: Duration| {
            // Rounded to the nearest tick; the RTP clock wraps mod 2^32.
            let t = (d.as_nanos() * u128::from(self.clock_rate) + 500_000_000) / 1_000_000_000;
            t as u32
        };
        match now.checked_duration_since(at) {
            Some(d) => ts.wrapping_add(ticks(d)),
            None => ts.wrapping_sub(ticks(at - now)),
        }
    }

    /// Writes one packet (header + `payload`) into `out`, covering `duration`
    /// RTP ticks of media; returns its length.
    pub fn packetize(
        &mut self,
        payload: &[u8],
        duration: u32,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let n = self.write(self.timestamp, self.talkspurt_start, payload, out)?;
        self.timestamp = self.timestamp.wrapping_add(duration);
        self.talkspurt_start = false;
        Ok(n)
    }

    /// Writes one packet of a video frame into `out`: every packet of a
    /// frame carries the frame's `timestamp` (its capture time on this
    /// stream's clock, which the caller keeps), and `marker` is set on the
    /// frame's last packet (RFC 7741 §4.1). Returns its length.
    pub fn packetize_frame(
        &mut self,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        self.write(timestamp, marker, payload, out)
    }

    fn write(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let header = Header {
            version: 2,
            marker,
            payload_type: self.payload_type,
            sequence_number: self.seq,
            timestamp,
            ssrc: self.ssrc,
            ..Header::default()
        };
        let hlen = header.marshal_size();
        let need = hlen + payload.len();
        if out.len() < need {
            return Err(RtpError::BufferTooSmall { need });
        }
        header
            .marshal_to(&mut out[..hlen])
            .map_err(|e| RtpError::Malformed(e.to_string()))?;
        out[hlen..need].copy_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        Ok(need)
    }

    /// Advances the clock over `duration` ticks that are not sent (DTX
    /// silence); the next packet starts a talkspurt and carries the marker.
    pub fn skip(&mut self, duration: u32) {
        self.timestamp = self.timestamp.wrapping_add(duration);
        self.talkspurt_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OPUS_20MS_TICKS, OPUS_PAYLOAD_TYPE, parse};
    use super::*;

    #[test]
    fn numbering_wraps_and_marks_talkspurts() {
        let mut s = RtpSender::new(0xDEAD_BEEF, OPUS_PAYLOAD_TYPE, 65534, u32::MAX - 100).unwrap();
        let mut buf = [0u8; 200];
        let payload = [7u8; 100];
        let mut seen = vec![];
        for i in 0..4 {
            if i == 2 {
                s.skip(OPUS_20MS_TICKS * 3);
            }
            let n = s.packetize(&payload, OPUS_20MS_TICKS, &mut buf).unwrap();
            let p = parse(&buf[..n]).unwrap();
            assert_eq!(p.payload, &payload);
            assert_eq!(p.header.payload_type, OPUS_PAYLOAD_TYPE);
            seen.push((
                p.header.sequence_number,
                p.header.timestamp,
                p.header.marker,
            ));
        }
        let t0 = u32::MAX - 100;
        assert_eq!(
            seen,
            vec![
                (65534, t0, true),
                (65535, t0.wrapping_add(960), false),
                (0, t0.wrapping_add(960 * 5), true),
                (1, t0.wrapping_add(960 * 6), false),
            ]
        );
        assert_eq!(s.packets_sent(), 4);
        assert_eq!(s.octets_sent(), 400);
    }

    #[test]
    fn rejects_small_buffer_and_bad_pt() {
        assert!(RtpSender::new(1, 128, 0, 0).is_err());
        let mut s = RtpSender::new(1, 111, 0, 0).unwrap();
        let mut small = [0u8; 20];
        assert!(matches!(
            s.packetize(&[0; 10], 960, &mut small),
            Err(RtpError::BufferTooSmall { need: 22 })
        ));
    }
}
