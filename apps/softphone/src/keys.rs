//! The plain UI's keys: lines read from stdin by one reader for the
//! process's lifetime, shared by its successive calls.
//!
//! The reader is a detached thread, not `tokio::io::stdin()`: tokio reads
//! stdin on its blocking pool, and a runtime waits for that read when it
//! shuts down, so a phone whose stdin is an open pipe without data never
//! exited (not even on SIGTERM); and a call that ended left its read
//! behind, which then ate the first line typed during the next call. A
//! detached thread holds nothing up: the process exits around it.

use std::io::BufRead;
use std::sync::OnceLock;
use tokio::sync::{Mutex, mpsc};

/// Lines read ahead of the calls that take them; more wait in the pipe.
const QUEUE: usize = 16;
/// The longest line kept whole; the rest of a longer one is skipped.
const MAX_LINE: usize = 4096;

/// Stdin's lines, from the first [`next_line`] on.
static STDIN: OnceLock<Mutex<mpsc::Receiver<String>>> = OnceLock::new();

/// The next line of stdin (without its line end); `None` once stdin is at
/// its end or cannot be read. Cancel-safe: a line is never lost to a
/// caller that stopped waiting.
pub async fn next_line() -> Option<String> {
    let lines =
        STDIN.get_or_init(|| Mutex::new(spawn_reader(std::io::BufReader::new(std::io::stdin()))));
    lines.lock().await.recv().await
}

/// Reads `input`'s lines on a detached thread; the channel closes at its
/// end or on a read error.
fn spawn_reader(input: impl BufRead + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut input = input;
            while let Some(line) = read_line(&mut input) {
                // The receiver lives as long as the process.
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        // The channel is closed: the call goes on without keys.
        tracing::warn!("cannot read stdin: {e}");
    }
    rx
}

/// One line of at most [`MAX_LINE`] bytes (the rest of a longer one is
/// read and dropped), lossily decoded; `None` at the end or on an error.
fn read_line(input: &mut impl BufRead) -> Option<String> {
    let mut line = Vec::new();
    loop {
        let buf = input.fill_buf().ok()?;
        if buf.is_empty() {
            // The end: a last line without a line end still counts.
            return (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned());
        }
        let (part, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let room = MAX_LINE - line.len();
        line.extend_from_slice(&part[..part.len().min(room)]);
        let ended = done > part.len();
        input.consume(done);
        if ended {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_bounded_and_until_the_end() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("a\r\n\nq\n{long}\nm\nlast");
        let mut r = std::io::BufReader::with_capacity(7, text.as_bytes());
        let mut got = Vec::new();
        while let Some(l) = read_line(&mut r) {
            got.push(l);
        }
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[..3], ["a", "", "q"]);
        assert_eq!(got[3].len(), MAX_LINE);
        assert_eq!(got[4..], ["m", "last"]);
    }

    #[tokio::test]
    async fn the_channel_carries_each_line_once_then_closes() {
        let mut rx = spawn_reader(std::io::Cursor::new(b"a\nd\n".to_vec()));
        assert_eq!(rx.recv().await.as_deref(), Some("a"));
        assert_eq!(rx.recv().await.as_deref(), Some("d"));
        assert_eq!(rx.recv().await, None);
    }
}
