//! `sotto-jitter`: the audio jitter buffer and the tools to judge it.
#![forbid(unsafe_code)]
