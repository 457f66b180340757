//! Errors as the user reads them: the chain of causes, each once.
//!
//! anyhow's `{:#}` prints every error in the chain. An error whose message
//! already ends with its source's (`#[error("http: {0}")] Http(#[from] E)`,
//! common in the crates under the phone) then shows that cause twice:
//! `wav: Failed to read enough bytes.: Failed to read enough bytes.`.
//! [`Causes`] leaves out a cause whose text the message before it already
//! ends with, so nothing is lost and nothing is said twice.

use std::fmt;

/// `{}` prints `e` and its causes, each once, joined by `: `.
pub struct Causes<'a>(pub &'a anyhow::Error);

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown: Option<String> = None;
        for cause in self.0.chain() {
            let text = cause.to_string();
            match &shown {
                // Said already, at the end of the message that wraps it.
                Some(last) if last.ends_with(&text) => continue,
                Some(_) => f.write_str(": ")?,
                None => {}
            }
            f.write_str(&text)?;
            shown = Some(text);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct Root;

    /// The pattern that repeats its source.
    #[derive(Debug, thiserror::Error)]
    #[error("io: {0}")]
    struct Repeats(#[from] Root);

    /// One that does not.
    #[derive(Debug, thiserror::Error)]
    #[error("io")]
    struct Wraps(#[from] Root);

    #[test]
    fn each_cause_is_shown_once() {
        let r: anyhow::Result<()> = Err(Repeats::from(Root)).context("reading a.wav");
        let e = r.unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "reading a.wav: io: disk on fire: disk on fire"
        );
        assert_eq!(Causes(&e).to_string(), "reading a.wav: io: disk on fire");
        let r: anyhow::Result<()> = Err(Wraps::from(Root)).context("reading a.wav");
        let e = r.unwrap_err();
        assert_eq!(Causes(&e).to_string(), "reading a.wav: io: disk on fire");
        // Repeated twice over (a repeating error around a repeating error).
        let e = anyhow::Error::from(Repeats::from(Root)).context("x: io: disk on fire");
        assert_eq!(Causes(&e).to_string(), "x: io: disk on fire");
        assert_eq!(Causes(&anyhow::anyhow!("plain")).to_string(), "plain");
    }
}
