//! The crate's error type.

/// Everything that can go wrong in `sotto-codecs`.
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
    /// A payload the decoder cannot parse.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// An error reported by libopus.
    #[error("opus: {0}")]
    Opus(#[from] ::opus::Error),
    /// A resampler could not be built or run.
    #[error("resampler: {0}")]
    Resample(String),
    /// A WAV file could not be read or written.
    #[error("wav: {0}")]
    Wav(#[from] hound::Error),
}
