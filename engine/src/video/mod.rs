//! Video over the call's SRTP session: VP8 frames carried in RTP as
//! RFC 7741 describes, on an SSRC of their own, and put back together
//! into whole frames on the way in.
//!
//! The call's half of it (encoder, rate, key frames, decoder) is
//! [`crate::call`]'s; this module holds the wire format, the frame
//! assembler and the settings.

pub mod assembler;
pub mod pace;
pub mod vp8;

pub use sotto_codecs::video::VideoFrame;

/// Why video settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoConfigError {
    /// A setting is outside what the pipeline supports.
    #[error("video {name} = {value}: expected {expected}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: u64,
        /// What it may be.
        expected: &'static str,
    },
}

/// Video settings of a call. Frames may come in any even size: the
/// encoder follows the size of the frames it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Frames a second the camera gives (the encoder's rate control
    /// spreads the bitrate over them).
    pub fps: u32,
    /// Bitrate at the start of the call, bit/s.
    pub start_bitrate: u32,
    /// Lowest bitrate loss may push the encoder to, bit/s.
    pub min_bitrate: u32,
    /// Highest bitrate, bit/s.
    pub max_bitrate: u32,
    /// Largest picture, in pixels, sent or taken: a larger camera frame
    /// is refused, and a peer's key frame declaring a larger size is
    /// dropped before it is decoded (a peer could otherwise make us hold
    /// hundreds of MB of 4096x4096 pictures and spend the call's thread
    /// decoding them). The default is 1920x1088.
    pub max_pixels: u32,
    /// Largest VP8 payload per RTP packet, descriptor included. With the
    /// RTP header, the SRTP tag, a TURN ChannelData header and IPv6/UDP
    /// headers the default stays under a 1280-byte path MTU.
    pub max_payload: usize,
    /// Ask the peer to send lost video packets again, and do so for it
    /// (RFC 4585 generic NACK), when the peer offers it too. A lost packet
    /// then costs a round trip's wait instead of a key frame. Default on.
    pub nack: bool,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            fps: 30,
            start_bitrate: 300_000,
            min_bitrate: 100_000,
            max_bitrate: 1_200_000,
            max_pixels: 1920 * 1088,
            max_payload: 1_100,
            nack: true,
        }
    }
}

impl VideoConfig {
    /// Checks the settings: a call is made only from settings that pass.
    pub fn validate(&self) -> Result<(), VideoConfigError> {
        let check = |name, value: u64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(VideoConfigError::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        check(
            "fps",
            self.fps.into(),
            (1..=60).contains(&self.fps),
            "1 to 60",
        )?;
        check(
            "min_bitrate",
            self.min_bitrate.into(),
            (30_000..=self.max_bitrate).contains(&self.min_bitrate),
            "30 000 up to max_bitrate",
        )?;
        check(
            "max_bitrate",
            self.max_bitrate.into(),
            self.max_bitrate <= 20_000_000,
            "at most 20 000 000",
        )?;
        check(
            "start_bitrate",
            self.start_bitrate.into(),
            (self.min_bitrate..=self.max_bitrate).contains(&self.start_bitrate),
            "between min_bitrate and max_bitrate",
        )?;
        check(
            "max_pixels",
            self.max_pixels.into(),
            (16 * 16..=4096 * 4096).contains(&self.max_pixels),
            "256 to 4096 x 4096",
        )?;
        check(
            "max_payload",
            self.max_payload as u64,
            (100..=1_200).contains(&self.max_payload),
            "100 to 1200",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_passes_and_bad_settings_say_which() {
        assert_eq!(VideoConfig::default().validate(), Ok(()));
        let bad = |c: VideoConfig| match c.validate() {
            Err(VideoConfigError::OutOfRange { name, .. }) => name,
            Ok(()) => "passed",
        };
        let d = VideoConfig::default;
        assert_eq!(bad(VideoConfig { fps: 0, ..d() }), "fps");
        assert_eq!(
            bad(VideoConfig {
                min_bitrate: 2_000_000,
                ..d()
            }),
            "min_bitrate"
        );
        assert_eq!(
            bad(VideoConfig {
                start_bitrate: 50_000,
                ..d()
            }),
            "start_bitrate"
        );
        assert_eq!(
            bad(VideoConfig {
                max_payload: 1_400,
                ..d()
            }),
            "max_payload"
        );
    }
}
