//! WAV file input and output (with `hound`).

use std::io::{Read, Seek, Write};
use std::path::Path;

use dasp::Sample;

use crate::CodecError;

/// A whole PCM clip: interleaved `i16` samples with their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl Clip {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }
}

/// Reads a WAV file of 16-bit integer or 32-bit float PCM.
pub fn read(path: impl AsRef<Path>) -> Result<Clip, CodecError> {
    from_reader(hound::WavReader::open(path)?)
}

/// Reads WAV data from any seekable reader.
pub fn read_from<R: Read>(reader: R) -> Result<Clip, CodecError> {
    from_reader(hound::WavReader::new(reader)?)
}

fn from_reader<R: Read>(reader: hound::WavReader<R>) -> Result<Clip, CodecError> {
    let spec = reader.spec();
    let samples = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader.into_samples::<i16>().collect::<Result<_, _>>()?,
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .map(|s| s.map(|s| s.clamp(-1.0, 1.0).to_sample::<i16>()))
            .collect::<Result<_, _>>()?,
        (format, bits) => {
            return Err(CodecError::Config(format!(
                "WAV with {bits}-bit {format:?} samples is not supported"
            )));
        }
    };
    Ok(Clip {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

/// Writes `clip` as a 16-bit PCM WAV file.
pub fn write(path: impl AsRef<Path>, clip: &Clip) -> Result<(), CodecError> {
    let writer = hound::WavWriter::create(path, spec(clip))?;
    finish(writer, clip)
}

/// Writes `clip` as 16-bit PCM WAV data to any seekable writer.
pub fn write_to<W: Write + Seek>(out: W, clip: &Clip) -> Result<(), CodecError> {
    finish(hound::WavWriter::new(out, spec(clip))?, clip)
}

fn spec(clip: &Clip) -> hound::WavSpec {
    hound::WavSpec {
        channels: clip.channels,
        sample_rate: clip.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn finish<W: Write + Seek>(mut writer: hound::WavWriter<W>, clip: &Clip) -> Result<(), CodecError> {
    let mut w = writer.get_i16_writer(clip.samples.len() as u32);
    for &s in &clip.samples {
        w.write_sample(s);
    }
    w.flush()?;
    writer.finalize()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn round_trip_in_memory() {
        let clip = Clip {
            sample_rate: 16_000,
            channels: 2,
            samples: (0..640).map(|i| (i * 37 % 2000 - 1000) as i16).collect(),
        };
        let mut buf = Cursor::new(Vec::new());
        write_to(&mut buf, &clip).unwrap();
        let back = read_from(Cursor::new(buf.into_inner())).unwrap();
        assert_eq!(back, clip);
        assert_eq!(back.frames(), 320);
        assert!((back.seconds() - 0.02).abs() < 1e-9);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_from(Cursor::new(b"RIFF\x00\x00\x00\x00WAVEjunk".to_vec())).is_err());
        assert!(read_from(Cursor::new(Vec::new())).is_err());
    }
}
