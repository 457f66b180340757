//! A [`ReplayGuard`] whose memory survives a restart of the app.
//!
//! A phone woken by a push starts the app afresh, so a guard held only in
//! memory would accept again any sealed message the server delivered in
//! the last [window](ReplayGuard::default) — an old call offer would ring
//! the phone a second time. [`ReplayFile`] keeps the guard's ids in a small
//! file and reads them back when opened.
//!
//! # The file
//!
//! A text journal, private to its owner (mode 0600 on Unix), holding only
//! sender device ids, message ids and the messages' own timestamps — no
//! keys, no payloads:
//!
//! ```text
//! sotto-replay 1
//! a <ts_ms> <sender device id> <message id>    an id was accepted
//! f <sender device id> <message id>            it was forgotten again
//! w <ts_ms> <sender device id>                the guard, full, let go of
//!                                              that sender's ids older
//!                                              than this
//! ```
//!
//! Each accepted or forgotten id is one line appended with a single write.
//! An offer's line is flushed to the disk (`fsync`) before
//! [`ReplayFile::accept`] returns, so once an offer has been handed on, a
//! crash cannot make it ring again; other kinds are left to the system to
//! write, as a lost line lets through only a message for a call that is
//! over (see [`ReplayFile::accept`]).
//! When opened, and once more lines have been appended than the file held
//! ids when last rewritten (and at least 1024), the file is rewritten from
//! memory — ids past the window left out — to a temporary file renamed
//! over it, so it stays within about twice the guard's capacity.
//!
//! # Several processes
//!
//! One device may run more than one process on its file (a `sotto listen`
//! and a `sotto call` started from the same configuration directory). Each
//! keeps the ids in memory, and they take turns on the file under an
//! exclusive advisory lock (`flock` on Unix) on a companion file, the
//! journal's path with `.lock` appended. Not on the journal itself: a
//! rewrite replaces it with a new file, and a lock on the old one would not
//! exclude a process that has opened the new one. The lock is held only
//! while a process reads, decides and writes. It first reads the lines the
//! others appended since it last looked — or, if one of them rewrote the
//! journal, the whole new file, which holds everything they all had — so
//! an id another process accepted is refused here as a repeat, and a
//! rewrite keeps every process's ids. If the lock cannot be taken at all
//! (a file system without locks), the process goes on without it, as it
//! does when a write fails: a warning is logged.
//!
//! Why not SQLite: this crate's SQLite is `sqlx`, an async pool built for
//! the server, and the workspace's other binding, `rusqlite`, must not be
//! linked beside it (their `libsqlite3-sys` clash). An append-only journal
//! needs no dependency, costs one `fsync` per offer as a SQLite commit
//! would, and its crash behaviour is easy to state: a torn write can only
//! damage the last line, which is then ignored — and the message it was
//! recording had not been handed on yet.
//!
//! # Damage
//!
//! A file that cannot be parsed, wholly or in part (a torn last line after
//! a crash, garbage, a truncation, another version), does not stop the
//! client: every line that parses is kept, the rest is skipped, a warning
//! is logged with `tracing`, and the file is rewritten clean. Messages
//! whose ids were on the damaged lines are then **accepted** if delivered
//! again. The alternative, refusing everything inside the window that
//! cannot be proven new, refuses everything: an id that is not remembered
//! proves nothing, and a message's timestamp cannot show it arrived after
//! the damage (senders' clocks may run up to a minute ahead, and the queued
//! offer whose push woke the phone is by nature older than the restart).
//! The phone would then miss every call for five minutes after a crash
//! that damaged the file, to stop a replay that needs a malicious server
//! *and* that crash. The same holds when a write fails (a full disk): the
//! message is accepted, a warning logged, and the next write rewrites the
//! whole file from memory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::SealError;
use crate::protocol::{DeviceId, Envelope, MAX_ID_LEN, MessageId, MessageKind};
use crate::seal::ReplayGuard;

/// First line of a replay file.
const HEADER: &str = "sotto-replay 1";
/// Longest valid line, newline included: `a`, a 20-digit timestamp, two ids.
const MAX_LINE: usize = 2 + 20 + 1 + MAX_ID_LEN + 1 + MAX_ID_LEN + 1;
/// Fewest appended lines that make a rewrite worth it.
const COMPACT_MIN_LINES: usize = 1024;

/// A [`ReplayGuard`] kept in a file: ids it accepts are remembered across
/// restarts (see the [module documentation](self) for the file and its
/// failure modes). Blocking I/O: call it off an async runtime's threads.
///
/// Several may be open on one file, in one process or several: each reads
/// what the others wrote before it decides (see
/// [Several processes](self#several-processes)).
#[derive(Debug)]
pub struct ReplayFile {
    guard: ReplayGuard,
    path: PathBuf,
    /// The companion file whose advisory lock the journal is used under;
    /// never replaced, unlike the journal.
    lock: File,
    /// Whether taking the lock has failed (warned about once).
    lock_failed: bool,
    /// The journal, open for reading and appending; `None` after a failed
    /// write or when the file ends in a torn line, so that the next write
    /// rewrites the file whole.
    file: Option<File>,
    /// How much of `file` is in memory: the end of its last whole line
    /// read or written.
    offset: u64,
    /// Lines appended (by any process) since the file was last rewritten.
    appended: usize,
    /// Ids the file held when last rewritten.
    rewritten: usize,
    compact_min: usize,
}

impl ReplayFile {
    /// Opens (or creates) the file at `path`, fills `guard` with the ids
    /// it holds that are still inside the window at Unix time `now_ms`,
    /// and rewrites it without the others. Also opens (or creates) the
    /// companion lock file, `path` with `.lock` appended.
    ///
    /// A damaged file is not an error (see [Damage](self#damage)); an error
    /// is a file that cannot be read or written at all (a missing
    /// directory, no permission).
    pub fn open(path: impl Into<PathBuf>, guard: ReplayGuard, now_ms: u64) -> io::Result<Self> {
        let path = path.into();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let lock = options.open(with_suffix(&path, ".lock"))?;
        let mut this = Self {
            guard,
            path,
            lock,
            lock_failed: false,
            file: None,
            offset: 0,
            appended: 0,
            rewritten: 0,
            compact_min: COMPACT_MIN_LINES,
        };
        this.guard.prune(now_ms);
        this.locked(|this| {
            match File::open(&this.path) {
                Ok(file) => {
                    let found = load(BufReader::new(file), now_ms, &mut this.guard, true);
                    this.warn_damage(&found);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            this.rewrite(Some(now_ms))
        })?;
        Ok(this)
    }

    /// [`ReplayGuard::accept`], once the ids other processes recorded in
    /// the file meanwhile are read (so that a message one of them handed
    /// on is refused here as a repeat). An accepted offer's id is on the
    /// disk when this returns `Ok` — unless writing failed, which is logged
    /// and does not refuse the message (see [Damage](self#damage)). Other
    /// kinds are written without waiting for the disk: one `fsync` per ICE
    /// candidate would hold up call set-up, and a crash that loses their
    /// lines lets through only a redelivery for a call that is over, which
    /// the app drops; an offer is what would ring the phone again.
    pub fn accept(&mut self, now_ms: u64, env: &Envelope) -> Result<(), SealError> {
        self.locked(|this| {
            let passes = this.guard.let_go_passes();
            this.refresh(now_ms);
            let accepted = this.guard.accept(now_ms, env);
            // Floors raised (reading, or making room, even for a message
            // then refused) go first, so that a reading replays them in
            // order with the id.
            let mut line = this.floors_raised_since(passes);
            if accepted.is_ok() {
                line += &format!("a {} {} {}\n", env.ts_ms, env.from, env.id);
            }
            if line.is_empty() {
                return accepted;
            }
            let durable = accepted.is_ok() && env.kind == MessageKind::Offer;
            if let Err(e) = this.write(&line, Some(now_ms), durable) {
                tracing::warn!(
                    path = %this.path.display(),
                    "replay file: could not record message {} from {}: {e}; \
                     it would be accepted again after a restart",
                    env.id,
                    env.from
                );
            }
            accepted
        })
    }

    /// The journal lines of every floor, if the guard has let ids go
    /// since its count of passes was `passes`; else nothing.
    fn floors_raised_since(&self, passes: u64) -> String {
        let mut lines = String::new();
        if self.guard.let_go_passes() != passes {
            for (from, ts_ms) in self.guard.floors() {
                let floor = Record::Floor {
                    ts_ms,
                    from: from.clone(),
                };
                lines += &floor.line();
                lines.push('\n');
            }
        }
        lines
    }

    /// [`ReplayGuard::forget`] (`now_ms` is the Unix time, to read what
    /// other processes wrote meanwhile), on the disk too when this returns
    /// (a failure is logged).
    pub fn forget(&mut self, now_ms: u64, env: &Envelope) {
        self.locked(|this| {
            let passes = this.guard.let_go_passes();
            this.refresh(now_ms);
            let mut line = this.floors_raised_since(passes);
            if this.guard.remembers(env) {
                this.guard.forget(env);
                line += &format!("f {} {}\n", env.from, env.id);
            }
            if line.is_empty() {
                return;
            }
            if let Err(e) = this.write(&line, Some(now_ms), true) {
                tracing::warn!(
                    path = %this.path.display(),
                    "replay file: could not forget message {} from {}: {e}; \
                     a restart would refuse its redelivery",
                    env.id,
                    env.from
                );
            }
        });
    }

    /// [`ReplayGuard::remembers`], as of this file's last operation (what
    /// other processes wrote since is not read).
    pub fn remembers(&self, env: &Envelope) -> bool {
        self.guard.remembers(env)
    }

    /// How many ids are remembered, as of the last operation.
    pub fn len(&self) -> usize {
        self.guard.len()
    }

    /// Whether no id is remembered, as of the last operation.
    pub fn is_empty(&self) -> bool {
        self.guard.is_empty()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` holding the lock, or without it if it cannot be taken
    /// (warned about once).
    fn locked<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let held = loop {
            match self.lock.lock() {
                Ok(()) => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !std::mem::replace(&mut self.lock_failed, true) {
                        tracing::warn!(
                            path = %self.path.display(),
                            "replay file: cannot lock it ({e}); going on without the lock, \
                             so another process on the same file may lose this one's ids"
                        );
                    }
                    break false;
                }
            }
        };
        let out = f(self);
        if held {
            // Closing the file would release it too; nothing else to do.
            let _ = self.lock.unlock();
        }
        out
    }

    /// Brings memory up to date with the journal, which other processes
    /// may have written since this one last looked. Called with the lock
    /// held, before deciding anything.
    fn refresh(&mut self, now_ms: u64) {
        // Ids past the window take no room from the ones read next.
        self.guard.prune(now_ms);
        if let Some(file) = &self.file
            && same_file(file, &self.path)
        {
            // Read the lines appended since.
            let mut reader = file;
            let found = reader
                .seek(SeekFrom::Start(self.offset))
                .map(|_| load(BufReader::new(reader), now_ms, &mut self.guard, false));
            match found {
                Ok(found) => {
                    self.offset += found.end;
                    self.appended += found.records + found.bad;
                    if found.torn || found.error.is_some() {
                        // A writer died mid-line: append no line to that.
                        self.file = None;
                    }
                    self.warn_damage(&found);
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "replay file: cannot read it: {e}");
                    self.file = None;
                }
            }
            return;
        }
        // Rewritten by another process, or never trusted since a write
        // failed here.
        let replaced = self.file.take().is_some();
        let file = match OpenOptions::new().read(true).append(true).open(&self.path) {
            Ok(file) => file,
            Err(e) => {
                // Kept from memory by the next write.
                tracing::warn!(path = %self.path.display(), "replay file: cannot open it: {e}");
                return;
            }
        };
        if replaced {
            // Everything written to the old file is in the new one (its
            // writer read the old one to the end first): it is the whole
            // truth, forgotten ids included.
            self.guard.clear();
        }
        // Else memory may hold ids the file lacks (the failed write's):
        // merged, and the next write rewrites the file from memory.
        let found = load(BufReader::new(&file), now_ms, &mut self.guard, true);
        self.warn_damage(&found);
        if replaced && found.damage().is_none() {
            self.file = Some(file);
            self.offset = found.end;
            self.appended = 0;
            self.rewritten = found.records;
        }
    }

    /// Logs what [`load`] found wrong, if anything.
    fn warn_damage(&self, found: &Loaded) {
        if let Some(damage) = found.damage() {
            tracing::warn!(
                path = %self.path.display(),
                kept = found.records,
                "replay file damaged ({damage}): what could not be read is forgotten, \
                 so a message it recorded would be accepted again"
            );
        }
    }

    /// Writes the change `line` records (already made in memory): appended
    /// (and on the disk before this returns if `durable`), or the whole
    /// file rewritten when it has grown or the last write failed. `now_ms`,
    /// when known, prunes ids past the window from a rewrite. Called with
    /// the lock held, after [`Self::refresh`].
    fn write(&mut self, line: &str, now_ms: Option<u64>, durable: bool) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return self.rewrite(now_ms);
        };
        if self.appended >= self.compact_min.max(self.rewritten) {
            return self.rewrite(now_ms);
        }
        let appended = file
            .write_all(line.as_bytes())
            .and_then(|()| if durable { file.sync_data() } else { Ok(()) });
        match appended {
            Ok(()) => {
                self.appended += 1;
                self.offset += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Possibly half a line on the disk: start afresh next time.
                self.file = None;
                Err(e)
            }
        }
    }

    /// Writes everything remembered to a new file and renames it over the
    /// journal, then reopens that for reading and appending. Called with
    /// the lock held, after [`Self::refresh`] (or, when opening, a load).
    fn rewrite(&mut self, now_ms: Option<u64>) -> io::Result<()> {
        self.file = None;
        if let Some(now_ms) = now_ms {
            self.guard.prune(now_ms);
        }
        // One per process: should the lock fail, two processes on one file
        // still do not rename each other's half-written copy.
        let tmp = with_suffix(&self.path, &format!(".tmp.{}", std::process::id()));
        // Left over from a crash, perhaps with other permissions.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        let mut out = BufWriter::new(file);
        write_journal(&mut out, &self.guard)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        sync_parent(&self.path);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        self.offset = file.metadata()?.len();
        self.file = Some(file);
        self.appended = 0;
        self.rewritten = self.guard.len();
        Ok(())
    }

    /// Compacts the file now, as a write does once it has grown.
    #[cfg(test)]
    fn compact(&mut self, now_ms: u64) {
        self.locked(|this| {
            this.refresh(now_ms);
            this.rewrite(Some(now_ms)).unwrap();
        });
    }
}

/// `path` with `suffix` appended to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `file` is still the file at `path` (not replaced by a rename).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Elsewhere, taken as replaced: the whole file is read again.
#[cfg(not(unix))]
fn same_file(_: &File, _: &Path) -> bool {
    false
}

/// Writes a journal of what `guard` remembers, as a rewrite does: the
/// header, then an accepted id a line.
fn write_journal(out: &mut impl Write, guard: &ReplayGuard) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for (from, ts_ms) in guard.floors() {
        let floor = Record::Floor {
            ts_ms,
            from: from.clone(),
        };
        writeln!(out, "{}", floor.line())?;
    }
    for (from, id, ts) in guard.entries() {
        writeln!(out, "a {ts} {from} {id}")?;
    }
    Ok(())
}

/// Makes a rename in `path`'s directory durable, where the platform can.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// What reading a file found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Loaded {
    /// Lines that parsed as records.
    records: usize,
    /// Lines that did not.
    bad: usize,
    /// The first line was the header (or none was looked for).
    header: bool,
    /// The file ended inside a line.
    torn: bool,
    /// Bytes read up to the end of the last whole line (the next line, if
    /// a writer completes it, starts there).
    end: u64,
    /// Reading failed part way.
    error: Option<io::ErrorKind>,
}

impl Loaded {
    /// What was wrong, if anything.
    fn damage(&self) -> Option<String> {
        let mut what = Vec::new();
        if !self.header {
            what.push("no header".to_owned());
        }
        if self.bad > 0 {
            what.push(format!("{} unreadable lines", self.bad));
        }
        if self.torn {
            what.push("a torn last line".to_owned());
        }
        if let Some(e) = self.error {
            what.push(format!("read error: {e}"));
        }
        (!what.is_empty()).then(|| what.join(", "))
    }
}

/// Replays the journal in `reader` into `guard`: accepted ids inside the
/// window at `now_ms` are restored, forgotten ones removed, and lines that
/// do not parse skipped. Reads a line at a time, so any file, however
/// large or damaged, costs at most twice the guard's capacity in memory
/// (see [`ReplayGuard::restore`]).
/// `from_start`: `reader` is a whole file, whose first line should be the
/// header; else it is what was appended to one after a whole line.
fn load(
    mut reader: impl BufRead,
    now_ms: u64,
    guard: &mut ReplayGuard,
    from_start: bool,
) -> Loaded {
    let mut found = Loaded {
        header: !from_start,
        ..Loaded::default()
    };
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut first = from_start;
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                found.error = Some(e.kind());
                break;
            }
        };
        if line.last() != Some(&b'\n') {
            if n < MAX_LINE {
                // The end of the file, inside a line.
                found.torn = true;
                break;
            }
            // Too long to be a record: skip to the end of it.
            found.bad += 1;
            match skip_line(&mut reader) {
                Ok(Some(skipped)) => found.end += (n + skipped) as u64,
                // The end of the file, inside that line.
                Ok(None) => {
                    found.torn = true;
                    break;
                }
                Err(e) => {
                    found.error = Some(e.kind());
                    break;
                }
            }
            first = false;
            continue;
        }
        found.end += n as u64;
        line.pop();
        if std::mem::take(&mut first) && line == HEADER.as_bytes() {
            found.header = true;
            continue;
        }
        match parse(&line) {
            Some(Record::Accepted { ts_ms, from, id }) => {
                guard.restore(now_ms, from, id, ts_ms);
                found.records += 1;
            }
            Some(Record::Forgotten { from, id }) => {
                guard.forget_id(&from, &id);
                found.records += 1;
            }
            Some(Record::Floor { ts_ms, from }) => {
                guard.restore_floor(now_ms, from, ts_ms);
                found.records += 1;
            }
            None => found.bad += 1,
        }
    }
    found
}

/// Reads past the next newline: how many bytes that took, or `None` if
/// the end came first.
fn skip_line(reader: &mut impl BufRead) -> io::Result<Option<usize>> {
    let mut skipped = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(Some(skipped + i + 1));
        }
        let len = buf.len();
        skipped += len;
        reader.consume(len);
    }
}

/// One line of the journal.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Accepted {
        ts_ms: u64,
        from: DeviceId,
        id: MessageId,
    },
    Forgotten {
        from: DeviceId,
        id: MessageId,
    },
    /// `from`'s ids older than `ts_ms` were let go
    /// ([`ReplayGuard::raise_floor`]).
    Floor {
        ts_ms: u64,
        from: DeviceId,
    },
}

impl Record {
    /// The line (without its newline) that records this.
    fn line(&self) -> String {
        match self {
            Self::Accepted { ts_ms, from, id } => format!("a {ts_ms} {from} {id}"),
            Self::Forgotten { from, id } => format!("f {from} {id}"),
            Self::Floor { ts_ms, from } => format!("w {ts_ms} {from}"),
        }
    }
}

/// Parses a line (without its newline) strictly: anything else is `None`.
fn parse(line: &[u8]) -> Option<Record> {
    let line = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = line.split(' ').collect();
    let ids = |from: &str, id: &str| Some((DeviceId::new(from).ok()?, MessageId::new(id).ok()?));
    // Digits only: `parse` would also take a sign.
    let ts = |ts: &str| {
        (!ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()))
            .then(|| ts.parse().ok())
            .flatten()
    };
    match fields[..] {
        ["a", ts_ms, from, id] => {
            let ts_ms = ts(ts_ms)?;
            let (from, id) = ids(from, id)?;
            Some(Record::Accepted { ts_ms, from, id })
        }
        ["w", ts_ms, from] => Some(Record::Floor {
            ts_ms: ts(ts_ms)?,
            from: DeviceId::new(from).ok()?,
        }),
        ["f", from, id] => {
            let (from, id) = ids(from, id)?;
            Some(Record::Forgotten { from, id })
        }
        _ => None,
    }
}

/// Fuzz entry point for the journal parser (the `replay_journal` target):
/// `data` is a file's bytes, after a first byte that sets the size of the
/// read buffer (1 to 255) so that lines cross its end anywhere. Panics only
/// on a bug: loading must find the same whatever the buffering and keep to
/// twice the guard's capacity; loading the file in two reads, as a process does
/// that reads what others appended (the second from the end of the last
/// whole line the first read), must find the same ids as one read; a line
/// that parses must parse the same once written back; and the journal a
/// rewrite would write must load again, undamaged, to the same ids (or,
/// from a guard beyond its capacity, to ids and floors that refuse all of
/// them).
#[doc(hidden)]
pub fn fuzz_load(data: &[u8]) {
    /// Inside the window: 2027; ids from 5 minutes before it on are kept.
    const NOW_MS: u64 = 1_800_000_000_000;
    const CAPACITY: usize = 16;
    let guard = || ReplayGuard::new(300_000, 60_000, CAPACITY, CAPACITY / 2);
    // The ids a guard remembers, and its floors.
    let ids = |guard: &ReplayGuard| {
        let mut ids: Vec<_> = guard
            .entries()
            .map(|(from, id, ts)| (from.to_string(), id.to_string(), ts))
            .collect();
        ids.sort();
        let mut floors: Vec<_> = guard
            .floors()
            .map(|(from, ts)| (from.to_string(), ts))
            .collect();
        floors.sort();
        (floors, ids)
    };
    let Some((&buffer, file)) = data.split_first() else {
        return;
    };
    let mut whole = guard();
    let found = load(file, NOW_MS, &mut whole, true);
    let mut buffered = guard();
    let reader = BufReader::with_capacity(usize::from(buffer).max(1), file);
    assert_eq!(
        load(reader, NOW_MS, &mut buffered, true),
        found,
        "buffer {buffer}"
    );
    assert_eq!(ids(&buffered), ids(&whole), "buffer {buffer}");
    assert!(whole.slots() <= 2 * CAPACITY);
    assert!(found.records + found.bad <= file.split(|&b| b == b'\n').count());
    assert!(found.end <= file.len() as u64);
    // As if another process appended the rest after a first read of the
    // first `buffer` bytes.
    let cut = file.len().min(usize::from(buffer));
    let mut twice = guard();
    let first = load(&file[..cut], NOW_MS, &mut twice, true);
    let end = usize::try_from(first.end).expect("within the file");
    let rest = load(&file[end..], NOW_MS, &mut twice, false);
    assert_eq!(first.end + rest.end, found.end);
    if !first.torn && first.error.is_none() {
        // A torn first read's last line was left for the second.
        assert_eq!(first.records + rest.records, found.records);
    }
    assert_eq!(ids(&twice), ids(&whole), "cut at {cut}");
    for line in file.split(|&b| b == b'\n') {
        if let Some(record) = parse(line) {
            assert_eq!(parse(record.line().as_bytes()), Some(record));
        }
    }
    let mut rewritten = Vec::new();
    write_journal(&mut rewritten, &whole).expect("writing to memory");
    let mut again = guard();
    let reread = load(&rewritten[..], NOW_MS, &mut again, true);
    assert_eq!(
        reread.damage(),
        None,
        "{}",
        String::from_utf8_lossy(&rewritten)
    );
    assert_eq!(reread.records, whole.len() + whole.floors().count());
    if whole.slots() <= CAPACITY {
        assert_eq!(ids(&again), ids(&whole));
    } else {
        // Beyond its capacity (ids read back that it could make no room
        // for), a reloading guard makes room anew: it may let other ids
        // go, but refuses every one the first remembered.
        for (from, id, ts) in whole.entries() {
            assert!(
                again.entries().any(|(f, i, _)| f == from && i == id) || ts < again.floor_of(from),
                "{from} {id} {ts} neither kept nor under a floor"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallId, MessageKind, PROTOCOL_VERSION};

    /// Window of [`ReplayGuard::default`].
    const WINDOW: u64 = 300_000;
    const T0: u64 = 1_800_000_000_000;

    pub(super) fn env(from: &str, ts_ms: u64) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::random(),
            from: DeviceId::new(from).unwrap(),
            to: DeviceId::new("me").unwrap(),
            call_id: CallId::new("call").unwrap(),
            kind: MessageKind::Offer,
            ts_ms,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        }
    }

    fn open(path: &Path, now_ms: u64) -> ReplayFile {
        ReplayFile::open(path, ReplayGuard::default(), now_ms).unwrap()
    }

    /// `n` messages from alice, recorded in a journal at `path` (closed).
    fn recorded(path: &Path, n: u64) -> Vec<Envelope> {
        let msgs: Vec<Envelope> = (0..n).map(|i| env("alice", T0 + i)).collect();
        let mut guard = open(path, T0);
        for m in &msgs {
            guard.accept(T0, m).unwrap();
        }
        msgs
    }

    /// Cuts the file at `path` to `len` bytes, as a crash mid-write would.
    fn cut(path: &Path, len: u64) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn an_accepted_id_is_refused_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let offer = env("alice", T0);
        let mut guard = open(&path, T0);
        assert_eq!(guard.accept(T0, &offer), Ok(()));
        drop(guard);
        let mut guard = open(&path, T0 + 1_000);
        assert!(guard.remembers(&offer));
        assert_eq!(guard.accept(T0 + 1_000, &offer), Err(SealError::Replay));
        let other = env("alice", T0 + 1_000);
        assert_eq!(
            guard.accept(T0 + 1_000, &other),
            Ok(()),
            "new ids still pass"
        );
    }

    #[test]
    fn ids_past_the_window_are_pruned_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let (old, young) = (env("alice", T0), env("bob", T0 + 200_000));
        let mut guard = open(&path, T0);
        guard.accept(T0, &old).unwrap();
        guard.accept(T0 + 200_000, &young).unwrap();
        drop(guard);
        let now = T0 + WINDOW + 1;
        let guard = open(&path, now);
        assert_eq!(guard.len(), 1);
        assert!(!guard.remembers(&old), "past the window");
        assert!(guard.remembers(&young), "still inside it");
        let young_line = format!("a {} bob {}", young.ts_ms, young.id);
        assert_eq!(lines(&path), [HEADER.to_owned(), young_line]);
    }

    #[test]
    fn a_garbage_file_yields_a_working_guard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut garbage: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        garbage.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        garbage.extend_from_slice(b"\na 12 no\na x alice m\n\0\0\0");
        std::fs::write(&path, &garbage).unwrap();
        let mut guard = open(&path, T0);
        assert!(guard.is_empty());
        let offer = env("alice", T0);
        assert_eq!(guard.accept(T0, &offer), Ok(()));
        drop(guard);
        // Rewritten clean, and the new id is kept.
        assert_eq!(lines(&path)[0], HEADER);
        assert!(open(&path, T0).remembers(&offer));
    }

    #[test]
    fn a_truncated_file_keeps_its_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let msgs = recorded(&path, 3);
        // Cut inside the last line, as a crash during its write would.
        cut(&path, std::fs::metadata(&path).unwrap().len() - 5);
        let mut guard = open(&path, T0);
        assert!(guard.remembers(&msgs[0]) && guard.remembers(&msgs[1]));
        assert!(!guard.remembers(&msgs[2]), "its line was torn");
        assert_eq!(guard.accept(T0, &msgs[2]), Ok(()));
        drop(guard);
        // Truncated to nothing: an empty, working guard.
        cut(&path, 0);
        let mut guard = open(&path, T0);
        assert!(guard.is_empty());
        assert_eq!(guard.accept(T0, &msgs[0]), Ok(()));
    }

    #[test]
    fn a_forget_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let offer = env("alice", T0);
        let mut guard = open(&path, T0);
        guard.accept(T0, &offer).unwrap();
        guard.forget(T0, &offer);
        drop(guard);
        let mut guard = open(&path, T0);
        assert!(!guard.remembers(&offer));
        assert_eq!(guard.accept(T0, &offer), Ok(()), "the redelivery passes");
        drop(guard);
        assert!(open(&path, T0).remembers(&offer), "and is remembered again");
    }

    #[test]
    fn loading_respects_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        recorded(&path, 3);
        let small = ReplayGuard::new(WINDOW, 60_000, 2, 2);
        let mut guard = ReplayFile::open(&path, small, T0).unwrap();
        assert_eq!(guard.len(), 2);
        // Alice's oldest was let go to make room; her floor refuses it.
        assert_eq!(lines(&path).len(), 4, "header, floor and two ids");
        assert_eq!(lines(&path)[1], format!("w {} alice", T0 + 1));
        // Ids past the window take no room from live ones.
        let now = T0 + WINDOW + 3;
        let young = env("bob", now);
        guard.accept(now, &young).unwrap();
        drop(guard);
        let one = ReplayGuard::new(WINDOW, 60_000, 1, 1);
        let guard = ReplayFile::open(&path, one, now).unwrap();
        assert!(
            guard.remembers(&young),
            "crowded out by ids past the window"
        );
    }

    #[test]
    fn ids_a_full_guard_let_go_stay_refused_across_reopenings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let small = || ReplayGuard::new(WINDOW, 60_000, 8, 8);
        // Mallory's five and Eve's three fill it; Bob's makes Mallory, who
        // holds more than the mean, let go of her oldest two.
        let mallory: Vec<Envelope> = (0..5).map(|i| env("mallory", T0 + i)).collect();
        let eve: Vec<Envelope> = (0..3).map(|i| env("eve", T0 + i)).collect();
        let bob = env("bob", T0 + 10);
        let mut guard = ReplayFile::open(&path, small(), T0).unwrap();
        for m in mallory.iter().chain(&eve).chain([&bob]) {
            guard.accept(T0 + 10, m).unwrap();
        }
        drop(guard);
        // Reopened twice: the first rewrites the journal from memory, so
        // the second reads the floor from that rewrite alone.
        for _ in 0..2 {
            let mut guard = ReplayFile::open(&path, small(), T0 + 10).unwrap();
            assert_eq!(guard.accept(T0 + 10, &mallory[0]), Err(SealError::Stale));
            assert_eq!(guard.accept(T0 + 10, &mallory[4]), Err(SealError::Replay));
            assert_eq!(guard.accept(T0 + 10, &eve[0]), Err(SealError::Replay));
            assert_eq!(guard.accept(T0 + 10, &bob), Err(SealError::Replay));
        }
    }

    #[test]
    fn an_id_another_process_accepted_is_kept_though_this_ones_share_is_spent() {
        // This process holds its full share of Alice's ids, all past the
        // window; the other accepts a new one from her. Reading it, this
        // process must keep it, and refuse the message as a repeat.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let small = || ReplayGuard::new(WINDOW, 60_000, 100, 2);
        let mut b = ReplayFile::open(&path, small(), T0).unwrap();
        let mut a = ReplayFile::open(&path, small(), T0).unwrap();
        b.accept(T0, &env("alice", T0)).unwrap();
        b.accept(T0, &env("alice", T0)).unwrap();
        let later = T0 + WINDOW + 10;
        let offer = env("alice", later);
        a.accept(later, &offer).unwrap();
        assert_eq!(b.accept(later, &offer), Err(SealError::Replay));
    }

    #[test]
    fn the_journal_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut guard =
            ReplayFile::open(&path, ReplayGuard::new(10, 10, 1_000, 1_000), T0).unwrap();
        guard.compact_min = 8;
        let mut longest = 0;
        let mut last = Vec::new();
        for i in 0..200 {
            // One new id every 5 ms with a 10 ms window: about 2 live ids.
            let now = T0 + 5 * i;
            let m = env("alice", now);
            guard.accept(now, &m).unwrap();
            longest = longest.max(lines(&path).len());
            last.push(m);
        }
        assert!(longest <= 1 + 8 + 3, "the file grew to {longest} lines");
        drop(guard);
        let now = T0 + 5 * 199;
        let guard = ReplayFile::open(&path, ReplayGuard::new(10, 10, 1_000, 1_000), now).unwrap();
        for m in last.iter().rev().take(3) {
            assert!(guard.remembers(m), "a live id was lost in compaction");
        }
    }

    #[test]
    fn two_processes_on_one_file_keep_each_others_ids_through_compaction() {
        // A `sotto listen` and a `sotto call` of one device on one file:
        // each records its own messages and rewrites the file in turn.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut a = open(&path, T0);
        let mut b = open(&path, T0);
        let mut msgs = Vec::new();
        for i in 0..4 {
            let (ma, mb) = (env("alice", T0 + i), env("bob", T0 + i));
            a.accept(T0, &ma).unwrap();
            b.accept(T0, &mb).unwrap();
            msgs.extend([ma, mb]);
        }
        a.compact(T0);
        b.compact(T0);
        let late = env("carol", T0);
        a.accept(T0, &late).unwrap();
        msgs.push(late);
        a.compact(T0);
        drop((a, b));
        let c = open(&path, T0);
        for m in &msgs {
            assert!(c.remembers(m), "{} from {} was lost", m.id, m.from);
        }
        assert_eq!(c.len(), msgs.len());
    }

    #[test]
    fn compaction_as_the_file_grows_keeps_the_other_processes_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let (mut a, mut b) = (open(&path, T0), open(&path, T0));
        (a.compact_min, b.compact_min) = (2, 2);
        let mut msgs = Vec::new();
        for i in 0..20 {
            let (ma, mb) = (env("alice", T0 + i), env("bob", T0 + i));
            a.accept(T0, &ma).unwrap();
            b.accept(T0, &mb).unwrap();
            msgs.extend([ma, mb]);
        }
        drop((a, b));
        let c = open(&path, T0);
        let lost = msgs.iter().filter(|m| !c.remembers(m)).count();
        assert_eq!(lost, 0, "{lost} of {} ids lost", msgs.len());
    }

    #[test]
    fn an_id_another_process_recorded_is_refused_as_a_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut a = open(&path, T0);
        let mut b = open(&path, T0);
        let offer = env("alice", T0);
        a.accept(T0, &offer).unwrap();
        assert_eq!(b.accept(T0, &offer), Err(SealError::Replay));
        assert!(b.remembers(&offer), "a repeat, not a refusal for room");
        // Also once A has rewritten the file since B last read it.
        let other = env("alice", T0);
        a.accept(T0, &other).unwrap();
        a.compact(T0);
        assert_eq!(b.accept(T0, &other), Err(SealError::Replay));
        // A forgets it (its app never got it): B may take it now.
        a.forget(T0, &other);
        assert_eq!(b.accept(T0, &other), Ok(()));
        assert_eq!(a.accept(T0, &other), Err(SealError::Replay));
    }

    #[test]
    fn processes_writing_at_once_take_turns() {
        // The lock at work: two writers at the same time, each rewriting
        // the file often; no id is lost and none is accepted twice.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let shared: Vec<Envelope> = (0..100).map(|i| env("carol", T0 + i)).collect();
        let run = |from: &'static str| {
            let (path, shared) = (path.clone(), shared.clone());
            std::thread::spawn(move || {
                let mut file = open(&path, T0);
                file.compact_min = 4;
                let mut mine = Vec::new();
                let mut won = Vec::new();
                for (i, m) in shared.iter().enumerate() {
                    let own = env(from, T0 + i as u64);
                    file.accept(T0, &own).unwrap();
                    mine.push(own);
                    if file.accept(T0, m).is_ok() {
                        won.push(m.id.clone());
                    }
                }
                (mine, won)
            })
        };
        let (a, b) = (run("alice"), run("bob"));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let c = open(&path, T0);
        for m in a.0.iter().chain(&b.0).chain(&shared) {
            assert!(c.remembers(m), "{} from {} was lost", m.id, m.from);
        }
        assert_eq!(a.1.len() + b.1.len(), shared.len(), "taken twice or never");
    }

    #[test]
    fn a_torn_line_left_by_a_crashed_process_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut a = open(&path, T0);
        // Another process died half way through writing its line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"a 1800000000000 bo").unwrap();
        drop(file);
        let offer = env("alice", T0);
        a.accept(T0, &offer).unwrap();
        drop(a);
        assert!(open(&path, T0).remembers(&offer));
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_file_is_private_and_stays_put() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut guard = open(&path, T0);
        let lock = with_suffix(&path, ".lock");
        let before = std::fs::metadata(&lock).unwrap();
        assert_eq!(before.mode() & 0o777, 0o600);
        guard.accept(T0, &env("alice", T0)).unwrap();
        guard.compact(T0);
        let after = std::fs::metadata(&lock).unwrap();
        assert_eq!(before.ino(), after.ino(), "the lock file was replaced");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        // Even one that existed with wider permissions.
        std::fs::write(&path, format!("{HEADER}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut guard = open(&path, T0);
        guard.accept(T0, &env("alice", T0)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_unusable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("replay");
        assert!(ReplayFile::open(&path, ReplayGuard::default(), T0).is_err());
    }

    #[test]
    fn lines_parse_strictly() {
        let ok = parse(b"a 12 alice m1").unwrap();
        assert!(matches!(ok, Record::Accepted { ts_ms: 12, .. }));
        assert!(matches!(
            parse(b"f alice m1"),
            Some(Record::Forgotten { .. })
        ));
        for bad in [
            &b"a +12 alice m1"[..],
            b"a 12 alice m1 ",
            b"a  12 alice m1",
            b"a 99999999999999999999 alice m1",
            b"a 12 al.ice m1",
            b"a 12 alice",
            b"f alice",
            b"x 12 alice m1",
            b"a 12 alice m\xff",
            b"",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_fuzz_entry_point_takes_damaged_journals() {
        let journal = format!("{HEADER}\na {T0} alice m1\na {T0} bob m2\nf alice m1\n");
        let long = format!("a {T0} {} m\na {T0} carol m3\n", "x".repeat(2 * MAX_LINE));
        let cases: [&[u8]; 6] = [
            b"",
            journal.as_bytes(),
            &journal.as_bytes()[..journal.len() - 3],
            long.as_bytes(),
            b"\n\n\x00a 1 a a\nf a a\nsotto-replay 1\n",
            b"a 18446744073709551615 x y\na 18446744073709551616 x y\n",
        ];
        for file in cases {
            for buffer in [0u8, 1, 2, 7, 64, 255] {
                let mut data = vec![buffer];
                data.extend_from_slice(file);
                fuzz_load(&data);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn loading_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            fuzz_load(&data);
        }

        #[test]
        fn journal_like_files_load_alike_however_buffered(
            buffer in proptest::prelude::any::<u8>(),
            lines in proptest::collection::vec(
                "(a 1[78][0-9]{11} [a-c]{1,2} [a-c0-9]{1,2}|f [a-c]{1,2} [a-c0-9]{1,2}|sotto-replay 1|a [0-9 ]{0,22}|x{0,300})\n?",
                0..64,
            ),
        ) {
            let mut data = vec![buffer];
            data.extend(lines.concat().into_bytes());
            fuzz_load(&data);
        }
    }
}

#[cfg(test)]
mod floors_between_processes {
    use super::*;

    /// [`super::tests::env`] with id `id`, and not an offer (so that it is
    /// not flushed to the disk on every accept).
    fn envl(from: &str, id: &str, ts_ms: u64) -> Envelope {
        Envelope {
            id: MessageId::new(id).unwrap(),
            kind: MessageKind::Ice,
            ..super::tests::env(from, ts_ms)
        }
    }

    /// Two processes that let different ids go: one raises a floor making
    /// room for a message it then refuses, forgets an id, and accepts
    /// another into the floor alone; the other, full of single ids, can
    /// make no room for that id when it reads it, yet keeps it, and so
    /// refuses the message as a repeat.
    #[test]
    fn an_id_read_back_is_kept_though_no_room_can_be_made() {
        const T: u64 = 1_800_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let g = || ReplayGuard::new(300_000, 60_000, 3, 3);
        let mut a = ReplayFile::open(&path, g(), T).unwrap();
        let mut b = ReplayFile::open(&path, g(), T).unwrap();
        let now = T + 1_000;
        // W holds two ids, Y one: full.
        a.accept(now, &envl("w", "w1", T + 100)).unwrap();
        a.accept(now, &envl("w", "w2", T + 200)).unwrap();
        a.accept(now, &envl("y", "y1", T + 300)).unwrap();
        // B gets an old, out-of-order one from W: the pass raises W's floor
        // to w1+1 (w1 let go) and then refuses it as stale. Nothing written.
        assert_eq!(
            b.accept(now, &envl("w", "w0", T + 50)),
            Err(SealError::Stale)
        );
        // W's last id is forgotten (a passing failure): floor-only in B.
        b.forget(now, &envl("w", "w2", T + 200));
        // Z takes the last place.
        a.accept(now, &envl("z", "z1", T + 400)).unwrap();
        // B accepts W's next into its floor-only entry: only "a" is written.
        let w3 = envl("w", "w3", T + 500);
        assert_eq!(b.accept(now, &w3), Ok(()));
        // A, full of single ids (w1, y1, z1), reads B's line: a let-go
        // pass frees nothing, and w3 is kept all the same.
        a.forget(now, &envl("y", "y1", T + 300));
        assert!(a.remembers(&w3));
        assert_eq!(a.accept(now, &w3), Err(SealError::Replay), "accepted twice");
    }

    /// One run of processes sharing a journal under random messages
    /// (stamped ahead, behind, alike), repeats, forgets, reopenings and
    /// compactions, small guards so that they are full and make room all
    /// the time: no message is ever accepted twice, and every guard's
    /// bookkeeping holds.
    fn random_run(seed: u64, capacity: usize, share: usize, senders: u64, processes: usize) {
        const WINDOW: u64 = 10_000;
        const AHEAD: u64 = 2_000;
        // xorshift: deterministic for a seed.
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let guard = || ReplayGuard::new(WINDOW, AHEAD, capacity, share);
        let mut now = 1_800_000_000_000u64;
        let mut ps: Vec<ReplayFile> = (0..processes)
            .map(|_| ReplayFile::open(&path, guard(), now).unwrap())
            .collect();
        let mut sent: Vec<Envelope> = Vec::new();
        let mut accepted: std::collections::HashSet<(String, String)> = Default::default();
        for step in 0..300 {
            now += below(400);
            let p = below(processes as u64) as usize;
            match below(10) {
                0..=5 => {
                    let ts = match below(4) {
                        0 => now + below(AHEAD),
                        1 => now - below(WINDOW),
                        2 => now - now % 1000,
                        _ => now,
                    };
                    let from = format!("s{}", below(senders));
                    sent.push(envl(&from, &format!("m{step}"), ts));
                }
                7 if !sent.is_empty() => {
                    let e = sent[below(sent.len() as u64) as usize].clone();
                    if ps[p].remembers(&e) {
                        ps[p].forget(now, &e);
                        accepted.remove(&(e.from.to_string(), e.id.to_string()));
                    }
                    continue;
                }
                8 => {
                    if below(4) == 0 {
                        ps[p] = ReplayFile::open(&path, guard(), now).unwrap();
                    } else {
                        ps[p].locked(|t| {
                            t.refresh(now);
                            t.rewrite(Some(now)).unwrap();
                        });
                    }
                    continue;
                }
                _ => {}
            }
            let Some(last) = sent.last() else { continue };
            let e = if below(3) == 0 {
                sent[below(sent.len() as u64) as usize].clone()
            } else {
                last.clone()
            };
            if ps[p].accept(now, &e).is_ok() {
                let key = (e.from.to_string(), e.id.to_string());
                assert!(
                    accepted.insert(key),
                    "seed {seed}: {e:?} accepted twice at step {step}"
                );
            }
            for (i, q) in ps.iter().enumerate() {
                if let Err(why) = q.guard.check_invariants(2 * capacity) {
                    panic!("seed {seed}: process {i} at step {step}: {why}");
                }
            }
        }
    }

    #[test]
    fn processes_sharing_a_journal_never_accept_a_message_twice() {
        for seed in 1..60 {
            for (capacity, share, senders, processes) in [
                (6, 3, 4, 2),
                (8, 8, 3, 2),
                (4, 4, 6, 2),
                (3, 3, 5, 2),
                (5, 5, 8, 3),
            ] {
                random_run(seed, capacity, share, senders, processes);
            }
        }
    }

    /// A journal whose floors come after an id, more of them than the
    /// capacity: its rewrite (floors first) loads to the same ids.
    #[test]
    fn floors_past_the_capacity_load_alike_when_rewritten() {
        let t = 1_800_000_000_000u64;
        let mut file = format!("{HEADER}\na {t} x m1\n");
        for i in 0..16 {
            file += &format!("w {t} s{i}\n");
        }
        let mut data = vec![64u8];
        data.extend(file.into_bytes());
        fuzz_load(&data);
    }
}
