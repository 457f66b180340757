//! VP8 in RTP as RFC 7741 lays it out: the payload descriptor (§4.2) in
//! front of each packet's share of a frame, and the key-frame test on the
//! VP8 payload header (§4.3).
//!
//! ```
//! use sotto_engine::video::vp8::{Vp8Packetizer, parse};
//!
//! let frame = vec![0x50u8; 1200];
//! let mut packetizer = Vp8Packetizer::new(7);
//! let packets = packetizer.packetize(&frame, 500).unwrap();
//! assert_eq!(packets.len(), 3);
//! let mut back = Vec::new();
//! for p in &packets {
//!     let parsed = parse(p).unwrap();
//!     assert_eq!(parsed.picture_id, Some(7));
//!     back.extend_from_slice(parsed.data);
//! }
//! assert_eq!(back, frame);
//! ```

/// The dynamic payload type we offer for VP8 (RFC 7741 leaves the number to SDP).
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// RTP clock rate of VP8 video (RFC 7741's media type fixes it at 90 kHz).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Bytes of the descriptor our packetizer writes: the required octet, the
/// X octet and a two-octet (15-bit) PictureID.
const DESCRIPTOR_LEN: usize = 4;
/// PictureIDs are at most 15 bits (RFC 7741 §4.2, M = 1).
const PICTURE_ID_MASK: u16 = 0x7fff;
/// Start code of a key frame's header (RFC 6386 §9.1), at bytes 3..6.
const KEYFRAME_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

// Required octet.
const X_BIT: u8 = 0x80;
const N_BIT: u8 = 0x20;
const S_BIT: u8 = 0x10;
const PID_MASK: u8 = 0x07;
// X octet.
const I_BIT: u8 = 0x80;
const L_BIT: u8 = 0x40;
const T_BIT: u8 = 0x20;
const K_BIT: u8 = 0x10;
// First PictureID octet.
const M_BIT: u8 = 0x80;

/// Errors from VP8 payload packetizing and parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp8PayloadError {
    /// The payload ends inside its descriptor.
    #[error("VP8 payload descriptor truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the descriptor needs (at least).
        need: usize,
        /// Bytes the payload has.
        have: usize,
    },
    /// The descriptor is followed by no VP8 data.
    #[error("VP8 payload carries no data after its descriptor")]
    NoData,
    /// There is no frame to packetize.
    #[error("empty VP8 frame")]
    EmptyFrame,
    /// `max_payload` leaves no room for a byte of frame after the descriptor.
    #[error("max payload {max_payload} too small: need at least {need} bytes")]
    MaxPayloadTooSmall {
        /// The size asked for.
        max_payload: usize,
        /// The smallest size that works.
        need: usize,
    },
}

/// Splits encoded VP8 frames into RTP payloads (RFC 7741 §4).
///
/// Every packet carries the extended descriptor with a 15-bit PictureID
/// (X = 1, I = 1, M = 1), the same for all packets of a frame and one more
/// for each frame, so a receiver can tell a lost frame from a late one. S is
/// set on the first packet only and PID is always 0: the frame goes out as
/// one partition, cut without regard to VP8's own partitions, which RFC
/// 7741 allows and which is what libwebrtc does.
#[derive(Debug, Clone)]
pub struct Vp8Packetizer {
    picture_id: u16,
}

impl Vp8Packetizer {
    /// A packetizer whose first frame carries `first_picture_id` (masked to
    /// 15 bits; it should be random, like the RTP sequence number).
    pub fn new(first_picture_id: u16) -> Self {
        Self {
            picture_id: first_picture_id & PICTURE_ID_MASK,
        }
    }

    /// The PictureID the next frame will carry.
    pub fn next_picture_id(&self) -> u16 {
        self.picture_id
    }

    /// Splits one encoded frame into payloads of at most `max_payload`
    /// bytes each, descriptor included, in sending order.
    ///
    /// The packets are as equal in size as they can be (the longer ones
    /// last, as libwebrtc does): one short tail packet would cost a packet's
    /// overhead for little data and stand out in the size pattern.
    pub fn packetize(
        &mut self,
        frame: &[u8],
        max_payload: usize,
    ) -> Result<Vec<Vec<u8>>, Vp8PayloadError> {
        if frame.is_empty() {
            return Err(Vp8PayloadError::EmptyFrame);
        }
        let room = max_payload.saturating_sub(DESCRIPTOR_LEN);
        if room == 0 {
            return Err(Vp8PayloadError::MaxPayloadTooSmall {
                max_payload,
                need: DESCRIPTOR_LEN + 1,
            });
        }
        let count = frame.len().div_ceil(room);
        let base = frame.len() / count;
        let larger = frame.len() % count;
        let [pid_hi, pid_lo] = self.picture_id.to_be_bytes();
        let mut packets = Vec::with_capacity(count);
        let mut rest = frame;
        for i in 0..count {
            let len = base + usize::from(i >= count - larger);
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let mut p = Vec::with_capacity(DESCRIPTOR_LEN + len);
            let start = if i == 0 { S_BIT } else { 0 };
            p.extend_from_slice(&[X_BIT | start, I_BIT, M_BIT | pid_hi, pid_lo]);
            p.extend_from_slice(chunk);
            packets.push(p);
        }
        self.picture_id = self.picture_id.wrapping_add(1) & PICTURE_ID_MASK;
        Ok(packets)
    }
}

/// One RTP payload split into what the descriptor says and the VP8 data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Payload<'a> {
    /// S: the packet starts a VP8 partition; with `partition == 0`, a frame.
    pub start: bool,
    /// PID: the index of the partition the packet starts or continues (0-7).
    pub partition: u8,
    /// N: the frame is not used to predict later frames and can be dropped.
    pub non_reference: bool,
    /// The 7- or 15-bit PictureID, if present.
    pub picture_id: Option<u16>,
    /// The VP8 data after the descriptor; never empty.
    pub data: &'a [u8],
}

impl Vp8Payload<'_> {
    /// Whether this packet begins a frame (S = 1 and PID = 0, RFC 7741 §4.2).
    pub fn starts_frame(&self) -> bool {
        self.start && self.partition == 0
    }
}

/// Parses the payload descriptor of one RTP payload (RFC 7741 §4.2).
///
/// Accepts every optional field (I with a 7- or 15-bit PictureID, L, T/K);
/// TL0PICIDX, TID, Y and KEYIDX are skipped, since a receiver without
/// temporal layers does not need them. Reserved bits are ignored as §4.2
/// asks. Never panics.
pub fn parse(payload: &[u8]) -> Result<Vp8Payload<'_>, Vp8PayloadError> {
    let byte = |i: usize| {
        payload.get(i).copied().ok_or(Vp8PayloadError::Truncated {
            need: i + 1,
            have: payload.len(),
        })
    };
    let b0 = byte(0)?;
    let mut at = 1;
    let mut picture_id = None;
    if b0 & X_BIT != 0 {
        let x = byte(at)?;
        at += 1;
        if x & I_BIT != 0 {
            let hi = byte(at)?;
            at += 1;
            picture_id = Some(if hi & M_BIT != 0 {
                let lo = byte(at)?;
                at += 1;
                u16::from_be_bytes([hi & !M_BIT, lo])
            } else {
                u16::from(hi)
            });
        }
        if x & L_BIT != 0 {
            byte(at)?;
            at += 1;
        }
        if x & (T_BIT | K_BIT) != 0 {
            byte(at)?;
            at += 1;
        }
    }
    let data = &payload[at..];
    if data.is_empty() {
        return Err(Vp8PayloadError::NoData);
    }
    Ok(Vp8Payload {
        start: b0 & S_BIT != 0,
        partition: b0 & PID_MASK,
        non_reference: b0 & N_BIT != 0,
        picture_id,
        data,
    })
}

/// Whether an encoded frame (or the first packet's data of one) is a key
/// frame: the P bit of the VP8 payload header is 0 and the key frame's
/// start code follows (RFC 7741 §4.3, RFC 6386 §9.1). False on input too
/// short to tell.
pub fn is_keyframe(frame: &[u8]) -> bool {
    match frame {
        [b0, _, _, s0, s1, s2, ..] => b0 & 0x01 == 0 && [*s0, *s1, *s2] == KEYFRAME_START_CODE,
        _ => false,
    }
}

/// Fuzz entry point: parses `data` as a payload, and packetizes it as a
/// frame and parses that back, checking the pieces add up.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(p) = parse(data) {
        assert!(!p.data.is_empty() && p.data.len() < data.len());
        let _ = is_keyframe(p.data);
    }
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let max_payload = usize::from(first);
    let mut packetizer = Vp8Packetizer::new(u16::from(first) << 8);
    match packetizer.packetize(frame, max_payload) {
        Ok(packets) => {
            let mut back = Vec::with_capacity(frame.len());
            for (i, packet) in packets.iter().enumerate() {
                assert!(packet.len() <= max_payload);
                let p = parse(packet).expect("own packet parses");
                assert_eq!(p.starts_frame(), i == 0);
                back.extend_from_slice(p.data);
            }
            assert_eq!(back, frame);
        }
        Err(e) => assert!(frame.is_empty() || max_payload <= DESCRIPTOR_LEN, "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn round_trip(frame: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
        let mut packetizer = Vp8Packetizer::new(0x1234);
        let packets = packetizer.packetize(frame, max_payload).unwrap();
        let mut back = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            assert!(packet.len() <= max_payload);
            let p = parse(packet).unwrap();
            assert_eq!(p.start, i == 0);
            assert_eq!(p.partition, 0);
            assert!(!p.non_reference);
            assert_eq!(p.picture_id, Some(0x1234));
            back.extend_from_slice(p.data);
        }
        assert_eq!(back, frame);
        packets
    }

    #[test]
    fn round_trips_frames_of_many_sizes() {
        // 1 byte; exactly one full packet; one byte over; exactly two full.
        for (len, max, count) in [
            (1, 5, 1),
            (1, 1200, 1),
            (496, 500, 1),
            (497, 500, 2),
            (992, 500, 2),
            (993, 500, 3),
            (10_000, 1200, 9),
        ] {
            assert_eq!(round_trip(&frame(len), max).len(), count, "{len}/{max}");
        }
    }

    #[test]
    fn packets_are_about_equal_in_size() {
        // 1000 bytes in 496-byte rooms: 3 packets of 333, 333, 334, not 496, 496, 8.
        let packets = round_trip(&frame(1000), 500);
        let sizes: Vec<usize> = packets.iter().map(|p| p.len() - DESCRIPTOR_LEN).collect();
        assert_eq!(sizes, [333, 333, 334]);
    }

    /// The descriptor against RFC 7741 §4.2's layout written out by hand:
    /// |X|R|N|S|R|PID| = 1 0 0 1 0 000, |I|L|T|K|RSV| = 1 0 0 0 0000,
    /// |M|PictureID| = 1 + the high 7 bits, then the low 8 bits.
    #[test]
    fn descriptor_bytes_match_the_rfc_layout() {
        let mut packetizer = Vp8Packetizer::new(0x2A5B);
        let packets = packetizer.packetize(&[0xAA, 0xBB, 0xCC], 6).unwrap();
        assert_eq!(
            packets,
            vec![
                vec![0b1001_0000, 0b1000_0000, 0b1010_1010, 0x5B, 0xAA],
                vec![0b1000_0000, 0b1000_0000, 0b1010_1010, 0x5B, 0xBB, 0xCC],
            ]
        );
    }

    #[test]
    fn picture_id_is_masked_and_wraps_at_15_bits() {
        let mut packetizer = Vp8Packetizer::new(0xFFFE);
        assert_eq!(packetizer.next_picture_id(), 0x7FFE);
        let ids: Vec<_> = (0..3)
            .map(|_| {
                let packets = packetizer.packetize(&[1, 2, 3], 100).unwrap();
                parse(&packets[0]).unwrap().picture_id.unwrap()
            })
            .collect();
        assert_eq!(ids, [0x7FFE, 0x7FFF, 0]);
    }

    #[test]
    fn packetize_rejects_empty_frames_and_tiny_payloads() {
        let mut packetizer = Vp8Packetizer::new(0);
        assert_eq!(
            packetizer.packetize(&[], 500),
            Err(Vp8PayloadError::EmptyFrame)
        );
        for max in [0, 3, 4] {
            assert_eq!(
                packetizer.packetize(&[1], max),
                Err(Vp8PayloadError::MaxPayloadTooSmall {
                    max_payload: max,
                    need: 5
                })
            );
        }
        // A failed call does not use up a PictureID.
        assert_eq!(packetizer.next_picture_id(), 0);
    }

    #[test]
    fn parses_every_descriptor_form() {
        // Only the required octet: N = 1, S = 0, PID = 3.
        let p = parse(&[0x23, 9]).unwrap();
        assert_eq!(
            p,
            Vp8Payload {
                start: false,
                partition: 3,
                non_reference: true,
                picture_id: None,
                data: &[9]
            }
        );
        // 7-bit PictureID 0x11 (mediasoup's example, reserved R bit set too).
        let p = parse(&[0xD0, 0x80, 0x11, 0x42]).unwrap();
        assert!(p.starts_frame());
        assert_eq!(p.picture_id, Some(0x11));
        assert_eq!(p.data, &[0x42]);
        // X with no optional field at all.
        let p = parse(&[0x90, 0x00, 0x42]).unwrap();
        assert_eq!((p.picture_id, p.data), (None, &[0x42][..]));
        // I (15-bit), L, T and K: 1 + 1 + 2 + 1 + 1 descriptor bytes.
        let p = parse(&[0x90, 0xF0, 0x81, 0x02, 0x07, 0b0110_0101, 0x42, 0x43]).unwrap();
        assert_eq!(p.picture_id, Some(0x0102));
        assert_eq!(p.data, &[0x42, 0x43]);
        // L only; T only; K only.
        for x in [0x40, 0x20, 0x10] {
            let payload = [0x90, x, 0x07, 0x42];
            let p = parse(&payload).unwrap();
            assert_eq!((p.picture_id, p.data), (None, &[0x42][..]), "{x:#x}");
        }
        // T and K together share one octet.
        let p = parse(&[0x90, 0x30, 0x07, 0x42]).unwrap();
        assert_eq!(p.data, &[0x42]);
        // 7-bit PictureID and L.
        let p = parse(&[0x90, 0xC0, 0x7F, 0x01, 0x42]).unwrap();
        assert_eq!((p.picture_id, p.data), (Some(0x7F), &[0x42][..]));
    }

    #[test]
    fn truncated_descriptors_and_empty_data_are_errors() {
        assert_eq!(
            parse(&[]),
            Err(Vp8PayloadError::Truncated { need: 1, have: 0 })
        );
        assert_eq!(parse(&[0x10]), Err(Vp8PayloadError::NoData));
        for truncated in [
            &[0x90][..],                  // X octet missing
            &[0x90, 0x80],                // PictureID missing
            &[0x90, 0x80, 0x81],          // second PictureID octet missing
            &[0x90, 0x40],                // TL0PICIDX missing
            &[0x90, 0x20],                // TID octet missing
            &[0x90, 0xF0, 0x81, 0x02],    // L and T/K missing
            &[0x90, 0xF0, 0x81, 0x02, 7], // T/K missing
        ] {
            assert!(
                matches!(
                    parse(truncated),
                    Err(Vp8PayloadError::Truncated { have, .. }) if have == truncated.len()
                ),
                "{truncated:x?}"
            );
        }
        // Complete descriptors with nothing after them.
        for bare in [&[0x90, 0x00][..], &[0x90, 0xF0, 0x81, 0x02, 7, 0]] {
            assert_eq!(parse(bare), Err(Vp8PayloadError::NoData), "{bare:x?}");
        }
    }

    #[test]
    fn keyframes_are_told_by_p_bit_and_start_code() {
        // A 320x240 key frame header: P = 0, start code, width, height.
        let key = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        assert!(is_keyframe(&key));
        assert!(is_keyframe(&key[..6]));
        // P = 1: an inter frame, whatever follows.
        let mut inter = key;
        inter[0] |= 1;
        assert!(!is_keyframe(&inter));
        // P = 0 but no start code.
        let mut bad = key;
        bad[4] = 0;
        assert!(!is_keyframe(&bad));
        for len in 0..6 {
            assert!(!is_keyframe(&key[..len]));
        }
    }

    #[test]
    fn fuzz_entry_survives_random_input() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000 {
            let mut buf = vec![0u8; len % 300];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            fuzz_parse(&buf);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = parse(&data) {
                prop_assert!(!p.data.is_empty());
                prop_assert!(data.ends_with(p.data));
                prop_assert!(p.partition <= 7);
            }
        }

        #[test]
        fn packetize_parse_concatenate_gives_the_frame_back(
            frame in proptest::collection::vec(any::<u8>(), 1..5000),
            max_payload in 5usize..1500,
            first_id in any::<u16>(),
        ) {
            let mut packetizer = Vp8Packetizer::new(first_id);
            let packets = packetizer.packetize(&frame, max_payload).unwrap();
            let sizes: Vec<usize> = packets.iter().map(Vec::len).collect();
            prop_assert!(sizes.iter().all(|&s| s <= max_payload));
            // As equal as can be: sizes differ by at most one byte.
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            let mut back = Vec::new();
            for (i, packet) in packets.iter().enumerate() {
                let p = parse(packet).unwrap();
                prop_assert_eq!(p.starts_frame(), i == 0);
                prop_assert_eq!(p.picture_id, Some(first_id & PICTURE_ID_MASK));
                back.extend_from_slice(p.data);
            }
            prop_assert_eq!(back, frame);
        }
    }
}
