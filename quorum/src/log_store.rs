//! The Raft log and vote, durable in a directory.
//!
//! - `raft-log`: an append-only file of framed records (`frame`): an entry,
//!   "truncate after log id X", "purged up to log id X" or "committed up to
//!   log id X". Opening replays it in order. When most records are dead
//!   (purged or truncated entries, superseded commit marks), the file is
//!   rewritten with only the live ones (a purge marker, the entries, the
//!   commit mark), replaced atomically.
//! - A bad record (cut short or failing its CRC) at open is one of two
//!   things. A crash tears only the end of the last write: after the first
//!   bad byte there is only the unwritten rest of that write (zeros, a cut
//!   record), so the tail is cut off and everything before it comes back.
//!   If a whole record (valid CRC, decodable) starts anywhere after the bad
//!   one, data was written after it and the bad record rotted later: open
//!   refuses, naming the file and offset, rather than drop committed entries.
//!   (A filesystem that persists a later page of one unsynced write before
//!   an earlier page would be refused too: an operator's call, never a
//!   silent loss.)
//! - The committed log id (`save_committed`) is a record too, written
//!   without its own fdatasync: it is a hint that lets a restarted node apply
//!   its committed entries at once instead of waiting for a leader (openraft
//!   re-applies up to `read_committed` at startup). It rides along with the
//!   next synced write; if a power cut loses it, the node waits for the
//!   leader, which is openraft's default behaviour.
//! - `vote`: one record, replaced atomically by each `save_vote`.
//!
//! Every write is fdatasync'ed before openraft hears of it: entries before
//! `IOFlushed::io_completed`, the vote before `save_vote` returns.
//!
//! The live entries are also kept in memory, and reads are served from
//! there: the metadata log is small, and the snapshot and purge keep it so.
//!
//! I/O is plain blocking `std::fs` on the shard's thread, not glommio DMA:
//! only shard 0 runs this, metadata writes are rare and small (a broker
//! registration, a topic, an ISR change), and a DMA file would need aligned
//! buffers and a read-modify-write of the tail block for each tiny append.
//! The cost is a stalled shard 0 for each fdatasync (on the order of a
//! millisecond on an SSD), which `election_timeout_min` must stay well above.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};

use crate::frame;
use crate::types::{Entry, LogId, TypeConfig, Vote};

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "vote";

/// A rewrite happens once the file holds more dead records than this and
/// more dead records than live ones.
const REWRITE_DEAD_RECORDS: usize = 1024;

/// One record of the log file.
#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Entries after this log id (all, if `None`) are gone.
    TruncateAfter(Option<LogId>),
    /// Entries up to and including this log id are gone.
    Purged(LogId),
    /// Entries up to and including this log id are committed. Last, so the
    /// other variants keep their postcard tags.
    Committed(LogId),
}

/// The log as openraft writes it. It is its own reader too: the handle
/// `get_log_reader` gives openraft's replication tasks shares the log.
pub struct LogStore {
    log: Rc<RefCell<Log>>,
}

struct Log {
    dir: PathBuf,
    /// `raft-log`, opened for appending.
    file: File,
    /// Records in the file that no longer hold a live entry.
    dead_records: usize,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
    /// A write failed: the file's tail is unknown, so nothing more is
    /// written until the log is opened again (which cuts the torn tail).
    failed: bool,
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join(format!("{LOG_FILE}.tmp")));
        let _ = std::fs::remove_file(dir.join(format!("{VOTE_FILE}.tmp")));
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut log = Log {
            dir: dir.to_path_buf(),
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            dead_records: 0,
            entries: BTreeMap::new(),
            last_purged: None,
            committed: None,
            vote: frame::read_file(&dir.join(VOTE_FILE))?,
            failed: false,
        };
        let mut at = 0;
        while let Some((payload, length)) = frame::next(&bytes[at..]) {
            log.replay(frame::decode(payload)?)?;
            at += length;
        }
        if at < bytes.len() {
            if let Some(whole) = whole_record_after(&bytes, at) {
                return Err(corrupt(format!(
                    "raft log {}: the record at byte {at} is damaged but a whole record follows at byte {whole}: \
                     not a torn tail (a crash tears only the end); refusing to open",
                    path.display()
                )));
            }
            tracing::warn!(
                "raft log {}: cutting a torn tail of {} bytes at byte {at}",
                path.display(),
                bytes.len() - at
            );
            log.file.set_len(at as u64)?;
            log.file.sync_data()?;
        }
        // A new file's directory entry must be durable too.
        weir_engine::durable::sync_dir(dir)?;
        Ok(LogStore { log: Rc::new(RefCell::new(log)) })
    }
}

impl Log {
    fn replay(&mut self, record: Record) -> io::Result<()> {
        match record {
            Record::Entry(entry) => {
                let index = entry.index();
                if index < self.next_index() {
                    let end = self.next_index();
                    return Err(corrupt(format!("entry {index} is before the log's end {end}")));
                }
                self.entries.insert(index, entry);
            }
            Record::TruncateAfter(after) => self.truncate_after(after),
            Record::Purged(upto) => self.purge(upto),
            Record::Committed(upto) => self.commit(upto),
        }
        Ok(())
    }

    fn commit(&mut self, upto: LogId) {
        if self.committed.replace(upto).is_some() {
            self.dead_records += 1;
        }
    }

    /// The lowest index the next entry may have.
    fn next_index(&self) -> u64 {
        match (self.entries.last_key_value(), &self.last_purged) {
            (Some((index, _)), _) => index + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 0,
        }
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries.last_key_value().map(|(_, e)| e.log_id()).or(self.last_purged)
    }

    fn truncate_after(&mut self, after: Option<LogId>) {
        let from = after.map_or(0, |id| id.index + 1);
        let gone = self.entries.split_off(&from);
        // Each removed entry's record, and the marker itself.
        self.dead_records += gone.len() + 1;
    }

    fn purge(&mut self, upto: LogId) {
        let kept = self.entries.split_off(&(upto.index + 1));
        let gone = std::mem::replace(&mut self.entries, kept);
        self.dead_records += gone.len() + 1;
        if self.last_purged.as_ref().is_none_or(|purged| purged < &upto) {
            self.last_purged = Some(upto);
        }
    }

    /// Writes `bytes` (whole records) at the end of the file, durably if
    /// `sync`.
    fn write(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write to the raft log failed"));
        }
        let mut written = self.file.write_all(bytes);
        if sync {
            written = written.and_then(|()| self.file.sync_data());
        }
        if written.is_err() {
            self.failed = true;
        }
        written
    }

    fn write_record(&mut self, record: &Record) -> io::Result<()> {
        let mut bytes = Vec::new();
        frame::encode(record, &mut bytes)?;
        self.write(&bytes, true)
    }

    /// Rewrites the file with only the live records once most are dead.
    fn maybe_rewrite(&mut self) -> io::Result<()> {
        if self.dead_records <= REWRITE_DEAD_RECORDS || self.dead_records <= self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        if let Some(purged) = &self.last_purged {
            frame::encode(&Record::Purged(*purged), &mut bytes)?;
        }
        for entry in self.entries.values() {
            frame::encode(&Record::Entry(entry.clone()), &mut bytes)?;
        }
        if let Some(committed) = &self.committed {
            frame::encode(&Record::Committed(*committed), &mut bytes)?;
        }
        let path = self.dir.join(LOG_FILE);
        let temporary = self.dir.join(format!("{LOG_FILE}.tmp"));
        // A failure after the rename leaves `self.file` on the replaced
        // file: nothing more may be appended through it.
        let reopened = weir_engine::durable::replace_file(&path, &temporary, &bytes)
            .and_then(|()| OpenOptions::new().append(true).open(&path));
        match reopened {
            Ok(file) => {
                self.file = file;
                self.dead_records = 0;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry> {
        self.entries.range(range).map(|(_, entry)| entry.clone()).collect()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        Ok(self.log.borrow().entries(range))
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.log.borrow().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let log = self.log.borrow();
        Ok(LogState { last_purged_log_id: log.last_purged, last_log_id: log.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        LogStore { log: self.log.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut log = self.log.borrow_mut();
        frame::replace_file(&log.dir, VOTE_FILE, vote)?;
        log.vote = Some(*vote);
        Ok(())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut log = self.log.borrow_mut();
        let mut bytes = Vec::new();
        let mut appended = Vec::new();
        let mut next = log.next_index();
        for entry in entries {
            // openraft truncates before it overwrites; an empty log may
            // start anywhere (openraft's own suite starts at 1).
            assert!(entry.index() >= next, "entry {} appended before the log's end {next}", entry.index());
            next = entry.index() + 1;
            let record = Record::Entry(entry);
            frame::encode(&record, &mut bytes)?;
            let Record::Entry(entry) = record else { unreachable!() };
            appended.push(entry);
        }
        // Durable before openraft hears of it.
        if let Err(e) = log.write(&bytes, true) {
            callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        for entry in appended {
            log.entries.insert(entry.index(), entry);
        }
        drop(log);
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // openraft never moves the committed id back, nor to `None`.
        let Some(committed) = committed else { return Ok(()) };
        let mut log = self.log.borrow_mut();
        let mut bytes = Vec::new();
        frame::encode(&Record::Committed(committed), &mut bytes)?;
        // Not synced: see the module doc.
        log.write(&bytes, false)?;
        log.commit(committed);
        log.maybe_rewrite()
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.log.borrow().committed)
    }

    async fn truncate_after(&mut self, after: Option<LogId>) -> io::Result<()> {
        let mut log = self.log.borrow_mut();
        log.write_record(&Record::TruncateAfter(after))?;
        log.truncate_after(after);
        log.maybe_rewrite()
    }

    async fn purge(&mut self, upto: LogId) -> io::Result<()> {
        let mut log = self.log.borrow_mut();
        log.write_record(&Record::Purged(upto))?;
        log.purge(upto);
        log.maybe_rewrite()
    }
}

/// Where a whole record (one that passes its CRC and decodes) starts after
/// the bad record at `bad`, if one does. Every offset is tried, as the bad
/// record's length field may be what rotted; a candidate needs a plausible
/// length within the file and a matching CRC, so garbage rarely costs more
/// than a header read.
fn whole_record_after(bytes: &[u8], bad: usize) -> Option<usize> {
    (bad + 1..bytes.len())
        .find(|&at| frame::next(&bytes[at..]).is_some_and(|(payload, _)| frame::decode::<Record>(payload).is_ok()))
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
