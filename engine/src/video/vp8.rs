//! Placeholder: filled in by the VP8 payload work.
