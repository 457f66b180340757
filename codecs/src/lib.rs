//! `sotto-codecs`: codecs, resampling, sample formats and WAV I/O.
#![forbid(unsafe_code)]
