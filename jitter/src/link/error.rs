//! Errors of the trace loaders and link models.

use std::path::{Path, PathBuf};

/// A trace file that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read. What the OS said is in the message,
    /// not a `source()`, so a printed cause chain says it once.
    #[error("reading {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
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

/// The text of the trace file at `path`.
pub(crate) fn read_trace(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|error| TraceError::Io {
        path: path.to_owned(),
        error,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_trace_names_the_file_and_says_why_once() {
        let e = read_trace(Path::new("/no/such/trace")).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("reading /no/such/trace: "), "{text}");
        assert!(
            std::error::Error::source(&e).is_none(),
            "said twice in a chain"
        );
    }
}
