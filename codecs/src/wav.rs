//! WAV file input and output.
//!
//! Reading parses the RIFF chunks itself rather than with `hound`, which
//! trusts the data chunk's length: a WAV written to a pipe (ffmpeg) leaves
//! it at 0xFFFFFFFF, a recorder that never finalised its file leaves it at
//! 0, and a truncated recording declares more than it holds. Here those
//! are read to the end of the file, keeping every whole frame there is,
//! and [`load`] says how the data ended ([`DataEnd`]). Nothing is
//! allocated from a length in the header: audio grows only with the bytes
//! actually read. Writing uses `hound`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
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

/// How the audio of a WAV file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEnd {
    /// Where the header's data length says.
    Declared,
    /// At the end of the file: the header leaves the data length unset (0
    /// or 0xFFFFFFFF, as in a WAV written to a pipe or by a recorder that
    /// never finalised its file).
    Unset,
    /// At the end of the file, before the length the header declares (a
    /// truncated recording): the whole frames there were kept.
    Early {
        /// Frames (samples per channel) the header declares.
        declared_frames: u64,
    },
}

/// A clip as read from a WAV file, and how its audio ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The audio.
    pub clip: Clip,
    /// How the audio ended: [`DataEnd::Early`] is worth a warning.
    pub end: DataEnd,
}

/// Reads a WAV file of 8/16/24/32-bit integer or 32/64-bit float PCM
/// (plain or WAVE_FORMAT_EXTENSIBLE) as 16-bit samples. A file that ends
/// before its header says is read as far as it goes: use [`load`] to
/// learn whether it did.
pub fn read(path: impl AsRef<Path>) -> Result<Clip, CodecError> {
    load(path).map(|l| l.clip)
}

/// Reads WAV data from any reader (see [`read`]).
pub fn read_from<R: Read>(reader: R) -> Result<Clip, CodecError> {
    load_from(reader).map(|l| l.clip)
}

/// Reads a WAV file (see [`read`]), saying how its audio ended.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, CodecError> {
    let file = File::open(path).map_err(hound::Error::IoError)?;
    load_from(BufReader::new(file))
}

/// Reads WAV data from any reader, saying how its audio ended; reads no
/// further than the end of the data chunk.
pub fn load_from<R: Read>(mut reader: R) -> Result<Loaded, CodecError> {
    let (format, data) = read_header(&mut reader)?;
    let (samples, bytes) = read_samples(&mut reader, &format, data.limit())?;
    let block = u64::from(format.block_align);
    let end = match data {
        Data::Unset => DataEnd::Unset,
        Data::Declared(len) if bytes / block < u64::from(len) / block => DataEnd::Early {
            declared_frames: u64::from(len) / block,
        },
        Data::Declared(_) => DataEnd::Declared,
    };
    Ok(Loaded {
        clip: Clip {
            sample_rate: format.sample_rate,
            channels: format.channels,
            samples,
        },
        end,
    })
}

/// Parses `data` as a WAV file and checks what comes out; the fuzz target
/// `wav_read` calls this. Never panics on any input (only on a broken
/// invariant), and allocates no more than the input's size in samples.
pub fn fuzz_read(data: &[u8]) {
    let Ok(loaded) = load_from(data) else {
        return;
    };
    let clip = &loaded.clip;
    assert!(clip.channels >= 1 && clip.sample_rate >= 1);
    assert_eq!(clip.samples.len() % usize::from(clip.channels), 0);
    // At least one byte per sample in the file.
    assert!(clip.samples.len() <= data.len());
}

/// A sample encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Integer PCM, left-justified in this many bytes (8-bit unsigned).
    Int(u16),
    /// IEEE float, this many bytes.
    Float(u16),
}

/// What the fmt chunk says.
#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    channels: u16,
    sample_rate: u32,
    /// Bytes per frame (one sample for each channel).
    block_align: u16,
}

/// The data chunk's length as the header has it.
#[derive(Debug, Clone, Copy)]
enum Data {
    Declared(u32),
    Unset,
}

impl Data {
    fn limit(self) -> u64 {
        match self {
            Self::Declared(len) => u64::from(len),
            Self::Unset => u64::MAX,
        }
    }
}

fn malformed(why: &'static str) -> CodecError {
    // hound's error, so that a reader of either kind of failure sees the
    // same "wav: Ill-formed WAVE file: ..." it always did.
    CodecError::Wav(hound::Error::FormatError(why))
}

fn io_error(e: io::Error) -> CodecError {
    CodecError::Wav(hound::Error::IoError(e))
}

/// Fills `buf`, or says how many bytes came before the end of the input.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, CodecError> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(got)
}

/// Reads and drops `n` bytes; `false` if the input ends first.
fn skip(reader: &mut impl Read, n: u64) -> Result<bool, CodecError> {
    let skipped = io::copy(&mut reader.take(n), &mut io::sink()).map_err(io_error)?;
    Ok(skipped == n)
}

const KSDATAFORMAT_SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];
const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Reads the RIFF header and the chunks up to the data chunk's content.
fn read_header(reader: &mut impl Read) -> Result<(Format, Data), CodecError> {
    let mut riff = [0u8; 12];
    if read_full(reader, &mut riff)? < 12 || &riff[..4] != b"RIFF" {
        return Err(malformed("no RIFF tag found"));
    }
    if &riff[8..] != b"WAVE" {
        return Err(malformed("no WAVE tag found"));
    }
    let riff_len = u32::from_le_bytes([riff[4], riff[5], riff[6], riff[7]]);
    // Bytes of the file read so far.
    let mut pos: u64 = 12;
    let mut format = None;
    loop {
        let mut header = [0u8; 8];
        if read_full(reader, &mut header)? < 8 {
            return Err(malformed(if format.is_some() {
                "no data chunk found"
            } else {
                "no fmt chunk found"
            }));
        }
        pos += 8;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        match &header[..4] {
            b"fmt " => {
                let mut fmt = [0u8; 40];
                let want = (len as usize).min(fmt.len());
                if read_full(reader, &mut fmt[..want])? < want {
                    return Err(malformed("fmt chunk cut short"));
                }
                format = Some(parse_fmt(&fmt[..want])?);
            }
            b"data" => {
                let Some(format) = format else {
                    return Err(malformed("data chunk before fmt chunk"));
                };
                // A finalised file may hold an empty data chunk followed
                // by others (its RIFF length runs past this header);
                // otherwise a length of 0 was never filled in.
                let more_chunks =
                    !matches!(riff_len, 0 | u32::MAX) && u64::from(riff_len) + 8 > pos;
                let data = match len {
                    0 if more_chunks => Data::Declared(0),
                    0 | u32::MAX => Data::Unset,
                    n => Data::Declared(n),
                };
                return Ok((format, data));
            }
            _ => {}
        }
        // The rest of the chunk (all of one that is not read), and the
        // pad byte after a chunk of odd length.
        let read = if &header[..4] == b"fmt " {
            u64::from(len.min(40))
        } else {
            0
        };
        let rest = u64::from(len) - read + u64::from(len & 1);
        if !skip(reader, rest)? {
            return Err(malformed(if format.is_some() {
                "no data chunk found"
            } else {
                "no fmt chunk found"
            }));
        }
        pos += u64::from(len) + u64::from(len & 1);
    }
}

/// Parses the first (up to) 40 bytes of a fmt chunk.
fn parse_fmt(b: &[u8]) -> Result<Format, CodecError> {
    if b.len() < 16 {
        return Err(malformed("invalid fmt chunk size"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let block_align = u16_at(12);
    let bits = u16_at(14);
    if tag == WAVE_FORMAT_EXTENSIBLE {
        // cbSize (22), valid bits, channel mask, then the sub-format GUID
        // whose first two bytes are the format tag.
        if b.len() < 40 {
            return Err(malformed("unexpected WAVEFORMATEXTENSIBLE size"));
        }
        if b[26..40] != KSDATAFORMAT_SUBTYPE_TAIL {
            return Err(CodecError::Config(
                "WAV with a sub-format other than PCM or IEEE float is not supported".into(),
            ));
        }
        tag = u16_at(24);
    }
    if channels == 0 {
        return Err(malformed("file contains zero channels"));
    }
    if sample_rate == 0 {
        return Err(malformed("sample rate is 0"));
    }
    if block_align == 0 || block_align % channels != 0 {
        return Err(malformed(
            "block align is not a whole number of bytes per channel",
        ));
    }
    // The container: samples are left-justified in it, whatever the
    // valid bits.
    let bytes = block_align / channels;
    if bits == 0 || u32::from(bits) > u32::from(bytes) * 8 {
        return Err(malformed("sample bits exceeds size of sample"));
    }
    let encoding = match (tag, bytes) {
        (WAVE_FORMAT_PCM, 1..=4) => Encoding::Int(bytes),
        (WAVE_FORMAT_IEEE_FLOAT, 4 | 8) => Encoding::Float(bytes),
        (WAVE_FORMAT_PCM | WAVE_FORMAT_IEEE_FLOAT, _) => {
            let kind = if tag == WAVE_FORMAT_PCM {
                "Int"
            } else {
                "Float"
            };
            return Err(CodecError::Config(format!(
                "WAV with {}-bit {kind} samples is not supported",
                u32::from(bytes) * 8
            )));
        }
        _ => {
            return Err(CodecError::Config(format!(
                "WAV format 0x{tag:04x} is not supported (only PCM and IEEE float)"
            )));
        }
    };
    Ok(Format {
        encoding,
        channels,
        sample_rate,
        block_align,
    })
}

/// Reads up to `limit` bytes of audio, or to the end of the input, as
/// 16-bit samples, keeping whole frames only; returns them and the bytes
/// read.
fn read_samples(
    reader: &mut impl Read,
    format: &Format,
    limit: u64,
) -> Result<(Vec<i16>, u64), CodecError> {
    let block = usize::from(format.block_align);
    // A whole number of frames, so that no frame straddles two reads.
    let mut buf = vec![0u8; (64 * 1024 / block).max(1) * block];
    let mut data = reader.take(limit);
    let (mut samples, mut total) = (Vec::new(), 0u64);
    loop {
        let n = read_full(&mut data, &mut buf)?;
        total += n as u64;
        decode(format.encoding, &buf[..n / block * block], &mut samples);
        // read_full stops short only at the end of the data (or input).
        if n < buf.len() {
            break;
        }
    }
    Ok((samples, total))
}

/// Appends `bytes` (whole samples) decoded to 16 bits.
fn decode(encoding: Encoding, bytes: &[u8], out: &mut Vec<i16>) {
    match encoding {
        Encoding::Int(1) => out.extend(bytes.iter().map(|&b| (i16::from(b) - 128) << 8)),
        // The top 16 bits of a left-justified sample.
        Encoding::Int(n) => out.extend(bytes.chunks_exact(usize::from(n)).map(|s| {
            let top = s.len() - 2;
            i16::from_le_bytes([s[top], s[top + 1]])
        })),
        Encoding::Float(4) => out.extend(bytes.chunks_exact(4).map(|s| {
            f32::from_le_bytes([s[0], s[1], s[2], s[3]])
                .clamp(-1.0, 1.0)
                .to_sample::<i16>()
        })),
        Encoding::Float(_) => out.extend(bytes.chunks_exact(8).map(|s| {
            let v = f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            (v.clamp(-1.0, 1.0) as f32).to_sample::<i16>()
        })),
    }
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

    /// A chunk: its id, the length its header gives, its body and the pad
    /// byte after an odd body.
    fn chunk(id: &[u8; 4], len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend(len.to_le_bytes());
        v.extend(body);
        if body.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    /// A fmt chunk of 16 bytes: `tag`, `bytes` per sample.
    fn fmt(tag: u16, channels: u16, rate: u32, bytes: u16) -> Vec<u8> {
        let align = channels * bytes;
        let mut b = Vec::new();
        b.extend(tag.to_le_bytes());
        b.extend(channels.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend((rate * u32::from(align)).to_le_bytes());
        b.extend(align.to_le_bytes());
        b.extend((bytes * 8).to_le_bytes());
        chunk(b"fmt ", 16, &b)
    }

    /// A WAVE_FORMAT_EXTENSIBLE fmt chunk (40 bytes) of sub-format `tag`.
    fn fmt_extensible(tag: u16, channels: u16, rate: u32, bytes: u16, valid: u16) -> Vec<u8> {
        let mut b = fmt(WAVE_FORMAT_EXTENSIBLE, channels, rate, bytes)[8..].to_vec();
        b.extend(22u16.to_le_bytes());
        b.extend(valid.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend(tag.to_le_bytes());
        b.extend(KSDATAFORMAT_SUBTYPE_TAIL);
        chunk(b"fmt ", 40, &b)
    }

    /// A RIFF file of `chunks`; its length as given, else the true one.
    fn riff(len: Option<u32>, chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut v = b"RIFF".to_vec();
        v.extend(len.unwrap_or(4 + body.len() as u32).to_le_bytes());
        v.extend(b"WAVE");
        v.extend(body);
        v
    }

    fn le16(pcm: &[i16]) -> Vec<u8> {
        pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f64 * 0.0576).sin() * 8000.0) as i16)
            .collect()
    }

    /// Mono 16-bit 48 kHz audio whose RIFF and data lengths are as given.
    fn mono16(riff_len: Option<u32>, data_len: u32, pcm: &[i16]) -> Vec<u8> {
        riff(
            riff_len,
            &[fmt(1, 1, 48_000, 2), chunk(b"data", data_len, &le16(pcm))],
        )
    }

    #[test]
    fn a_wav_written_to_a_pipe_is_read_to_its_end() {
        // ffmpeg -f wav pipe: leaves both lengths at 0xFFFFFFFF (hound
        // refused it: "data chunk length is not a multiple of sample size").
        let pcm = tone(48_000);
        let got = load_from(&mono16(Some(u32::MAX), u32::MAX, &pcm)[..]).unwrap();
        assert_eq!(got.end, DataEnd::Unset);
        assert_eq!(got.clip.samples, pcm);
        assert_eq!(got.clip.seconds(), 1.0);
    }

    #[test]
    fn a_wav_never_finalised_is_read_to_its_end() {
        // A recorder that never came back to fill in the lengths: 0, or
        // the header-only placeholder (36) for the RIFF. Read as empty
        // before: the call sent silence.
        let pcm = tone(4_800);
        for riff_len in [0, 36] {
            let got = load_from(&mono16(Some(riff_len), 0, &pcm)[..]).unwrap();
            assert_eq!(got.end, DataEnd::Unset);
            assert_eq!(got.clip.samples, pcm, "RIFF length {riff_len}");
        }
        // A finalised file whose empty data chunk has another after it
        // (the RIFF length covers it) is empty, not that chunk read as audio.
        let empty = riff(
            None,
            &[
                fmt(1, 1, 48_000, 2),
                chunk(b"data", 0, &[]),
                chunk(b"LIST", 8, b"INFOabcd"),
            ],
        );
        let got = load_from(&empty[..]).unwrap();
        assert_eq!((got.end, got.clip.samples.len()), (DataEnd::Declared, 0));
    }

    #[test]
    fn a_truncated_wav_keeps_the_whole_samples_it_holds() {
        // Refused before ("Failed to read enough bytes"), all of it lost.
        let pcm = tone(48_000);
        let mut bytes = mono16(None, 96_000, &pcm);
        bytes.truncate(bytes.len() - 1_001);
        let got = load_from(&bytes[..]).unwrap();
        assert_eq!(
            got.end,
            DataEnd::Early {
                declared_frames: 48_000
            }
        );
        // 500 samples and a half gone: the half sample is dropped too.
        assert_eq!(got.clip.samples, pcm[..48_000 - 501]);

        // Stereo cut inside a frame: whole frames only, so that the
        // channels stay in their places.
        let stereo: Vec<i16> = tone(2 * 4_800);
        let mut bytes = riff(
            None,
            &[fmt(1, 2, 48_000, 2), chunk(b"data", 19_200, &le16(&stereo))],
        );
        bytes.truncate(bytes.len() - 6);
        let got = load_from(&bytes[..]).unwrap();
        assert_eq!(
            got.end,
            DataEnd::Early {
                declared_frames: 4_800
            }
        );
        assert_eq!(got.clip.channels, 2);
        assert_eq!(got.clip.samples, stereo[..2 * 4_800 - 4]);
    }

    #[test]
    fn other_chunks_are_skipped_with_their_padding_and_the_data_ends_where_declared() {
        // An odd LIST chunk (and its pad byte) before the data, a chunk
        // after it; hound did not skip the pad byte.
        let pcm = tone(960);
        let stereo = riff(
            None,
            &[
                chunk(b"JUNK", 3, b"abc"),
                fmt_extensible(1, 2, 44_100, 2, 16),
                chunk(b"LIST", 13, b"INFOISFTsotto"),
                chunk(b"data", 1_920, &le16(&pcm)),
                chunk(b"cue ", 4, &[1, 2, 3, 4]),
            ],
        );
        let got = load_from(&stereo[..]).unwrap();
        assert_eq!(got.end, DataEnd::Declared);
        assert_eq!(
            got.clip,
            Clip {
                sample_rate: 44_100,
                channels: 2,
                samples: pcm
            }
        );
        assert_eq!(got.clip.frames(), 480);
    }

    #[test]
    fn every_common_sample_format_reads_as_16_bits() {
        // Multiples of 256, exact in 8 bits too.
        let pcm: Vec<i16> = (-128..128).map(|i| i * 256).collect();
        let unsigned8: Vec<u8> = pcm.iter().map(|&s| ((s >> 8) + 128) as u8).collect();
        let int24: Vec<u8> = pcm
            .iter()
            .flat_map(|s| [0xaa, s.to_le_bytes()[0], s.to_le_bytes()[1]])
            .collect();
        let int32: Vec<u8> = pcm
            .iter()
            .flat_map(|s| [0, 0x55, s.to_le_bytes()[0], s.to_le_bytes()[1]])
            .collect();
        let float32: Vec<u8> = pcm
            .iter()
            .flat_map(|&s| (f32::from(s) / 32_768.0).to_le_bytes())
            .collect();
        let float64: Vec<u8> = pcm
            .iter()
            .flat_map(|&s| (f64::from(s) / 32_768.0).to_le_bytes())
            .collect();
        let cases = [
            ("u8", fmt(1, 1, 8_000, 1), unsigned8),
            (
                "s24 extensible",
                fmt_extensible(1, 1, 8_000, 3, 24),
                int24.clone(),
            ),
            (
                "s24 in s32",
                fmt_extensible(1, 1, 8_000, 4, 24),
                int32.clone(),
            ),
            ("s32", fmt(1, 1, 8_000, 4), int32),
            ("f32", fmt(3, 1, 8_000, 4), float32.clone()),
            (
                "f32 extensible",
                fmt_extensible(3, 1, 8_000, 4, 32),
                float32.clone(),
            ),
            ("f64", fmt(3, 1, 8_000, 8), float64),
        ];
        for (name, fmt, data) in cases {
            let bytes = riff(None, &[fmt, chunk(b"data", data.len() as u32, &data)]);
            let got = load_from(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.end, DataEnd::Declared, "{name}");
            assert_eq!(got.clip.samples, pcm, "{name}");
        }
        // Float from a pipe, as ffmpeg writes pcm_f32le: out of range
        // clipped.
        let mut loud = float32;
        loud.extend(2.0f32.to_le_bytes());
        let bytes = riff(
            Some(u32::MAX),
            &[
                fmt_extensible(3, 1, 22_050, 4, 32),
                chunk(b"data", u32::MAX, &loud),
            ],
        );
        let got = load_from(&bytes[..]).unwrap();
        assert_eq!(got.end, DataEnd::Unset);
        assert_eq!(got.clip.samples[..256], pcm[..]);
        assert_eq!(got.clip.samples[256], i16::MAX);
        // What is not PCM is said plainly.
        let alaw = riff(None, &[fmt(6, 1, 8_000, 1), chunk(b"data", 2, &[1, 2])]);
        let e = load_from(&alaw[..]).unwrap_err().to_string();
        assert!(e.contains("format 0x0006 is not supported"), "{e}");
    }

    #[test]
    fn a_hostile_header_is_an_error_or_what_the_file_holds() {
        let pcm = tone(5);
        // A data length of 2 GB over 10 bytes: 5 samples, nothing reserved.
        let got = load_from(&mono16(None, 0x7fff_fffe, &pcm)[..]).unwrap();
        assert_eq!(got.clip.samples, pcm);
        assert!(matches!(got.end, DataEnd::Early { .. }));
        // A container of 32 kB, whose size in bits overflows 16 bits
        // (found by the fuzzer).
        let mut huge = fmt(1, 1, 8_000, 2);
        huge[20..22].copy_from_slice(&0x8000u16.to_le_bytes());
        huge[22..24].copy_from_slice(&u16::MAX.to_le_bytes());
        // Chunks that claim to run past the end, fmt fields of zero.
        let bad = [
            riff(None, &[huge, chunk(b"data", 2, &[0, 0])]),
            riff(
                None,
                &[chunk(b"LIST", u32::MAX, b"ab"), fmt(1, 1, 8_000, 2)],
            ),
            riff(None, &[chunk(b"fmt ", u32::MAX, &fmt(1, 1, 8_000, 2)[8..])]),
            riff(None, &[fmt(1, 0, 8_000, 2), chunk(b"data", 2, &[0, 0])]),
            riff(None, &[fmt(1, 1, 0, 2), chunk(b"data", 2, &[0, 0])]),
            riff(None, &[fmt(1, 1, 8_000, 0), chunk(b"data", 2, &[0, 0])]),
            riff(None, &[chunk(b"data", 2, &[0, 0]), fmt(1, 1, 8_000, 2)]),
            riff(None, &[chunk(b"fmt ", 4, &[1, 0, 1, 0])]),
            riff(None, &[fmt(1, 1, 8_000, 2)]),
            b"RIFF\xff\xff\xff\xffWAVE".to_vec(),
            b"RIFF\xff\xff\xff\xffAVI ".to_vec(),
        ];
        for b in bad {
            assert!(load_from(&b[..]).is_err(), "{b:?}");
            fuzz_read(&b);
        }
    }

    #[test]
    fn the_speech_files_read_as_hound_reads_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/speech");
        let mut seen = 0;
        for sub in std::fs::read_dir(dir).unwrap() {
            for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
                let path = f.unwrap().path();
                if path.extension().is_none_or(|e| e != "wav") {
                    continue;
                }
                let h = hound::WavReader::open(&path).unwrap();
                let spec = h.spec();
                let samples: Vec<i16> = h.into_samples().map(Result::unwrap).collect();
                let got = load(&path).unwrap();
                assert_eq!(got.end, DataEnd::Declared, "{}", path.display());
                assert_eq!(
                    got.clip,
                    Clip {
                        sample_rate: spec.sample_rate,
                        channels: spec.channels,
                        samples
                    },
                    "{}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen >= 6, "{seen}");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_after_a_header_read_without_panic(
            tag in proptest::sample::select(vec![1u16, 3, 0xfffe, 6]),
            channels in 0u16..4,
            bytes in 0u16..9,
            lens in proptest::collection::vec(proptest::prelude::any::<u32>(), 3),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut f = fmt(tag, channels, 8_000, bytes);
            if tag == 0xfffe {
                f = fmt_extensible(1, channels, 8_000, bytes, bytes * 8);
            }
            f[4..8].copy_from_slice(&lens[0].to_le_bytes());
            let mut b = riff(Some(lens[1]), &[f, chunk(b"data", lens[2], &[])]);
            b.extend(&tail);
            fuzz_read(&b);
            // Cut anywhere.
            for cut in [0, 11, 12, 20, 36, 44, b.len() / 2] {
                fuzz_read(&b[..cut.min(b.len())]);
            }
        }
    }
}
