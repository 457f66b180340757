//! What a sound device runs at: 48 kHz, the engine's rate, when it can, in
//! whatever sample format it offers; else a rate the call resamples from.

use anyhow::{Context as _, anyhow};
use cpal::traits::DeviceTrait as _;
use cpal::{SampleFormat, SupportedStreamConfig, SupportedStreamConfigRange};

/// The engine's rate: a device that runs at it needs no resampling.
pub(super) const ENGINE_RATE: u32 = 48_000;
/// Rates to run a device at when it cannot run at 48 kHz, best first
/// (after its own default rate): ones the resampler takes, whole
/// multiples of 100 Hz.
const FALLBACK_RATES: [u32; 6] = [44_100, 96_000, 32_000, 24_000, 16_000, 8_000];
/// Sample formats the callbacks convert, best first.
const FORMATS: [SampleFormat; 7] = [
    SampleFormat::I16,
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::F64,
    SampleFormat::U16,
    SampleFormat::I8,
    SampleFormat::U8,
];

/// How a device stream is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFormat {
    /// Channels the device runs with (the call uses the first).
    pub channels: u16,
    /// Samples per second per channel.
    pub rate: u32,
    /// The device's sample format.
    pub sample: SampleFormat,
}

impl std::fmt::Display for DeviceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz {} x{}", self.rate, self.sample, self.channels)?;
        if self.rate != ENGINE_RATE {
            f.write_str(" (resampled)")?;
        }
        Ok(())
    }
}

impl DeviceFormat {
    /// Samples per channel in 10 ms.
    pub(super) fn frame_len(&self) -> usize {
        self.rate as usize / 100
    }
}

/// The format to open a device with, from what it supports and its
/// default: `preferred` (48 kHz, the engine's rate, outside tests) when
/// any supported configuration has it, else its default rate, else the
/// first of [`FALLBACK_RATES`] it has; at that rate the default's format
/// and channel count when offered, else the best of [`FORMATS`] and the
/// fewest channels. `None` when nothing fits.
fn choose_format(
    supported: &[SupportedStreamConfigRange],
    default: Option<&SupportedStreamConfig>,
    preferred: u32,
) -> Option<DeviceFormat> {
    let default_rate = default
        .map(|d| d.sample_rate())
        .filter(|r| *r > 0 && r.is_multiple_of(100));
    let rates = std::iter::once(preferred)
        .chain(default_rate)
        .chain(FALLBACK_RATES);
    for rate in rates {
        let best = supported
            .iter()
            .filter(|r| r.contains_rate(rate) && r.channels() > 0)
            .filter_map(|r| {
                let rank = FORMATS.iter().position(|f| *f == r.sample_format())?;
                let same = |d: &SupportedStreamConfig| {
                    (
                        d.sample_format() != r.sample_format(),
                        d.channels() != r.channels(),
                    )
                };
                let (other_format, other_channels) = default.map_or((true, true), same);
                Some(((other_format, other_channels, rank, r.channels()), r))
            })
            .min_by_key(|(key, _)| *key);
        if let Some((_, r)) = best {
            return Some(DeviceFormat {
                channels: r.channels(),
                rate,
                sample: r.sample_format(),
            });
        }
    }
    None
}

/// The format `d` is opened with for input (or output).
pub(super) fn device_format(
    d: &cpal::Device,
    input: bool,
    preferred: u32,
) -> anyhow::Result<DeviceFormat> {
    let (supported, default): (Vec<_>, _) = if input {
        (
            d.supported_input_configs()
                .context("device configurations")?
                .collect(),
            d.default_input_config().ok(),
        )
    } else {
        (
            d.supported_output_configs()
                .context("device configurations")?
                .collect(),
            d.default_output_config().ok(),
        )
    };
    choose_format(&supported, default.as_ref(), preferred).ok_or_else(|| {
        anyhow!("the device offers no rate and sample format a call can use: {supported:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(channels: u16, min: u32, max: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        let any = cpal::SupportedBufferSize::Unknown;
        SupportedStreamConfigRange::new(channels, min, max, any, f)
    }

    fn default(channels: u16, rate: u32, f: SampleFormat) -> SupportedStreamConfig {
        SupportedStreamConfig::new(channels, rate, cpal::SupportedBufferSize::Unknown, f)
    }

    fn choose(
        supported: &[SupportedStreamConfigRange],
        default: Option<&SupportedStreamConfig>,
    ) -> Option<DeviceFormat> {
        choose_format(supported, default, ENGINE_RATE)
    }

    #[test]
    fn a_device_runs_at_48_khz_when_it_can_in_its_default_format() {
        let ranges = [
            range(2, 8_000, 192_000, SampleFormat::I16),
            range(2, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::F32),
        ];
        let d = default(2, 44_100, SampleFormat::F32);
        let f = choose(&ranges, Some(&d)).unwrap();
        let want = DeviceFormat {
            channels: 2,
            rate: 48_000,
            sample: SampleFormat::F32,
        };
        assert_eq!(f, want);
        // Without a default: the best format, the fewest channels.
        let f = choose(&ranges, None).unwrap();
        assert_eq!(
            (f.rate, f.sample, f.channels),
            (48_000, SampleFormat::I16, 2)
        );
        let f = choose(&ranges[1..], None).unwrap();
        assert_eq!(
            (f.rate, f.sample, f.channels),
            (48_000, SampleFormat::F32, 1)
        );
    }

    #[test]
    fn a_device_without_48_khz_runs_at_its_default_or_a_rate_the_resampler_takes() {
        // A card that runs only at 44.1 kHz, in 32-bit samples.
        let only_44 = [range(2, 44_100, 44_100, SampleFormat::I32)];
        let f = choose(&only_44, Some(&default(2, 44_100, SampleFormat::I32)));
        let want = DeviceFormat {
            channels: 2,
            rate: 44_100,
            sample: SampleFormat::I32,
        };
        assert_eq!(f, Some(want));
        // Its default rate first, when the resampler takes it.
        let low = [range(1, 8_000, 32_000, SampleFormat::I16)];
        let f = choose(&low, Some(&default(1, 16_000, SampleFormat::I16)));
        assert_eq!(f.map(|f| f.rate), Some(16_000));
        // 22.05 kHz is not a whole number of samples in 10 ms: the next
        // rate in range that is.
        let f = choose(&low, Some(&default(1, 22_050, SampleFormat::I16)));
        assert_eq!(f.map(|f| f.rate), Some(32_000));
        let odd = [range(1, 11_025, 22_050, SampleFormat::I16)];
        assert_eq!(choose(&odd, None).map(|f| f.rate), Some(16_000));
        // Nothing to use: formats the callbacks cannot convert, no rates.
        let dsd = [range(2, 48_000, 48_000, SampleFormat::DsdU8)];
        assert_eq!(choose(&dsd, None), None);
        assert_eq!(
            choose(&[range(1, 22_050, 22_050, SampleFormat::I16)], None),
            None
        );
        assert_eq!(choose(&[], None), None);
    }
}
