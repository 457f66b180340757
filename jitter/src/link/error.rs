//! Errors of the trace loaders and link models.

use std::path::PathBuf;

/// A trace file that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line that does not have the expected form.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Timestamps that go backwards.
    #[error("line {line}: timestamp goes backwards")]
    NotAscending {
        /// 1-based line number.
        line: usize,
    },
    /// No data lines at all.
    #[error("trace has no data")]
    Empty,
    /// A trace that spans no time, so it cannot be looped.
    #[error("trace spans no time")]
    ZeroDuration,
}

/// A link model that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Packets handed to a link out of send order.
    #[error("packet {index} is sent before the packet preceding it")]
    Unsorted {
        /// Index of the first packet out of order.
        index: usize,
    },
    /// A parameter outside its meaningful range.
    #[error("invalid link parameter: {0}")]
    Config(String),
}
