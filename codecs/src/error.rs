//! The crate's error type.

/// Everything that can go wrong in `sotto-codecs`.
///
/// A variant that wraps another crate's error puts that error's text in
/// its message and does not also return it as its
/// [`source`](std::error::Error::source): reporters that print the whole
/// chain (anyhow's `{:#}`) would otherwise show it twice, while `{}`
/// alone would lose it if the message left it out.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A configuration the codec cannot run with (rate, channels, frame size…).
    #[error("unsupported configuration: {0}")]
    Config(String),
    /// A PCM frame handed to an encoder has the wrong number of samples.
    #[error("PCM frame has {got} samples, expected {expected}")]
    FrameSize {
        /// Interleaved samples received.
        got: usize,
        /// Interleaved samples one frame must hold.
        expected: usize,
    },
    /// A picture size a video frame or codec cannot take: a side that is
    /// odd, or outside 2 to 4096 pixels.
    #[error("picture size {width}x{height} not supported: sides must be even, 2 to 4096")]
    PictureSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// An I420 buffer whose length does not match its picture size.
    #[error("I420 buffer has {got} bytes, expected {expected}")]
    PictureData {
        /// Bytes received.
        got: usize,
        /// Bytes the picture size needs (`width * height * 3 / 2`).
        expected: usize,
    },
    /// A picture handed to a video encoder has another size than the
    /// encoder was configured for.
    #[error("picture is {got_width}x{got_height}, encoder is configured for {width}x{height}")]
    PictureMismatch {
        /// Width of the picture received.
        got_width: u32,
        /// Height of the picture received.
        got_height: u32,
        /// Configured width.
        width: u32,
        /// Configured height.
        height: u32,
    },
    /// An error reported by libvpx: its message, and its detail when it
    /// gave one.
    #[error("vpx: {0}")]
    Vpx(String),
    /// A payload the decoder cannot parse.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// An error reported by libopus.
    #[error("opus: {0}")]
    Opus(::opus::Error),
    /// A resampler could not be built or run.
    #[error("resampler: {0}")]
    Resample(String),
    /// A WAV file could not be read or written.
    #[error("wav: {0}")]
    Wav(hound::Error),
}

impl From<::opus::Error> for CodecError {
    fn from(e: ::opus::Error) -> Self {
        Self::Opus(e)
    }
}

impl From<hound::Error> for CodecError {
    fn from(e: hound::Error) -> Self {
        Self::Wav(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_wrapped_error_is_said_once() {
        let e = CodecError::from(hound::Error::FormatError("no RIFF tag found"));
        assert_eq!(
            e.to_string(),
            "wav: Ill-formed WAVE file: no RIFF tag found"
        );
        // Not a source as well: `{:#}` would print it a second time.
        assert!(e.source().is_none());
        // libopus refuses a sample rate it does not run at.
        let bad = ::opus::Encoder::new(12_345, ::opus::Channels::Mono, ::opus::Application::Voip);
        let e = CodecError::from(bad.expect_err("12 345 Hz is refused"));
        assert!(e.to_string().starts_with("opus: "), "{e}");
        assert!(e.source().is_none());
    }
}
