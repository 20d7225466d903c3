//! The storage seam: every point where the engine makes something durable
//! (an fdatasync of a file, an fsync of a directory) goes through here, so a
//! test can see exactly what each one covered and cut the power after any of
//! them ([`power_loss`]).

use std::path::Path;

use weir_runtime::io::{Directory, DmaFile};

use crate::error::{io_err, EngineError};

/// fdatasync: the file's data and size are durable once this returns.
pub(crate) async fn fdatasync(file: &DmaFile) -> Result<(), EngineError> {
    file.fdatasync().await.map_err(io_err)?;
    if power_loss::recording() {
        if let Some(path) = file.path() {
            power_loss::file_synced(&path);
        }
    }
    Ok(())
}

/// fsync of a directory: the creations, renames and removals of its entries
/// are durable once this returns.
pub(crate) async fn sync_directory(directory: &Directory) -> Result<(), EngineError> {
    directory.sync().await.map_err(io_err)?;
    if power_loss::recording() {
        if let Some(path) = directory.path() {
            power_loss::directory_synced(&path);
        }
    }
    Ok(())
}

/// [`fdatasync`] for a blocking `std::fs::File` at `path`.
pub(crate) fn sync_std_file(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    if power_loss::recording() {
        power_loss::file_synced(path);
    }
    Ok(())
}

/// [`sync_directory`] for a blocking caller.
pub(crate) fn sync_std_directory(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    if power_loss::recording() {
        power_loss::directory_synced(dir);
    }
    Ok(())
}

/// A power cut, simulated for tests: what survives in a directory is the
/// entries its last directory sync saw, each with the content its file had at
/// its last fdatasync (empty if it never had one); nothing written after.
/// That is the guarantee POSIX gives and no more: real file systems often
/// keep more, so a log that survives this survives them.
///
/// Record a directory with [`record`] (its state then counts as durable),
/// run the engine, take a [`freeze`] at the moment of the cut (the engine
/// may go on running: later syncs do not change a frozen state), or have
/// [`cut_after`] take it right after a given sync, then [`restore`] the
/// directory to it and reopen. Recording reads a synced
/// file whole at each sync, so it is for small test logs only. Only the
/// directory itself is recorded, not subdirectories.
pub mod power_loss {
    use std::collections::{BTreeMap, HashMap};
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// How many directories are being recorded: syncs cost nothing extra at 0.
    static RECORDED: AtomicUsize = AtomicUsize::new(0);
    static RECORDINGS: Mutex<Option<HashMap<PathBuf, Recording>>> = Mutex::new(None);

    /// A file: its inode and birth time. An inode number alone is not one:
    /// a file created after another was removed may get its number, and
    /// must not be given the removed file's content.
    type FileId = (u64, u128);

    fn file_id(metadata: &std::fs::Metadata) -> FileId {
        let born = metadata.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        (metadata.ino(), born.map_or(0, |d| d.as_nanos()))
    }

    /// What a power cut would leave of one directory.
    #[derive(Clone, Debug, Default)]
    pub struct DurableState {
        /// File name to file, as of the last directory sync.
        entries: BTreeMap<String, FileId>,
        /// File to content, as of its last fdatasync.
        contents: HashMap<FileId, Vec<u8>>,
    }

    struct Recording {
        state: DurableState,
        /// Syncs to go before [`cut_after`]'s cut.
        cut_in: Option<usize>,
        cut: Option<DurableState>,
    }

    impl Recording {
        fn synced(&mut self) {
            match self.cut_in {
                Some(1) => (self.cut_in, self.cut) = (None, Some(self.state.clone())),
                Some(n) => self.cut_in = Some(n - 1),
                None => {}
            }
        }
    }

    pub(super) fn recording() -> bool {
        RECORDED.load(Ordering::Relaxed) > 0
    }

    fn with_recording<T>(dir: &Path, f: impl FnOnce(&mut Recording) -> T) -> Option<T> {
        let mut recordings = RECORDINGS.lock().unwrap_or_else(|e| e.into_inner());
        recordings.as_mut()?.get_mut(dir).map(f)
    }

    /// Starts recording `dir` (which must exist); its present state counts as
    /// durable.
    pub fn record(dir: &Path) -> std::io::Result<()> {
        let mut state = DurableState { entries: entries(dir)?, contents: HashMap::new() };
        for (name, &file) in &state.entries {
            state.contents.insert(file, std::fs::read(dir.join(name))?);
        }
        let mut recordings = RECORDINGS.lock().unwrap_or_else(|e| e.into_inner());
        let recording = Recording { state, cut_in: None, cut: None };
        if recordings.get_or_insert_with(HashMap::new).insert(dir.to_path_buf(), recording).is_none() {
            RECORDED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// What a power cut now would leave of `dir`, which is being recorded.
    pub fn freeze(dir: &Path) -> DurableState {
        with_recording(dir, |r| r.state.clone()).expect("freeze of a directory that is not being recorded")
    }

    /// Cuts the power of `dir` (being recorded) right after its `syncs`th
    /// sync from now (0: now); [`take_cut`] then gives what the cut left.
    /// Cutting after each sync in turn covers every state a power cut can
    /// leave: between two syncs, nothing durable changes.
    pub fn cut_after(dir: &Path, syncs: usize) {
        with_recording(dir, |r| match syncs {
            0 => r.cut = Some(r.state.clone()),
            n => r.cut_in = Some(n),
        })
        .expect("a cut in a directory that is not being recorded");
    }

    /// What [`cut_after`]'s cut left; None while the syncs it waits for have
    /// not all happened.
    pub fn take_cut(dir: &Path) -> Option<DurableState> {
        with_recording(dir, |r| r.cut.take()).flatten()
    }

    /// Stops recording `dir` and rewrites it to `state`: files not in it are
    /// removed, the others get the content they had at their last sync.
    pub fn restore(dir: &Path, state: &DurableState) -> std::io::Result<()> {
        let mut recordings = RECORDINGS.lock().unwrap_or_else(|e| e.into_inner());
        if recordings.as_mut().and_then(|r| r.remove(dir)).is_some() {
            RECORDED.fetch_sub(1, Ordering::Relaxed);
        }
        drop(recordings);
        for name in entries(dir)?.keys() {
            if !state.entries.contains_key(name) {
                std::fs::remove_file(dir.join(name))?;
            }
        }
        for (name, file) in &state.entries {
            let content = state.contents.get(file).map_or(&[][..], Vec::as_slice);
            std::fs::write(dir.join(name), content)?;
        }
        Ok(())
    }

    pub(super) fn file_synced(path: &Path) {
        let Some(dir) = path.parent() else { return };
        let read = || Some((file_id(&std::fs::metadata(path).ok()?), std::fs::read(path).ok()?));
        with_recording(dir, |r| {
            if let Some((file, content)) = read() {
                r.state.contents.insert(file, content);
            }
            r.synced();
        });
    }

    pub(super) fn directory_synced(dir: &Path) {
        with_recording(dir, |r| {
            if let Ok(entries) = entries(dir) {
                r.state.entries = entries;
            }
            r.synced();
        });
    }

    /// The regular files of `dir`, by name.
    fn entries(dir: &Path) -> std::io::Result<BTreeMap<String, FileId>> {
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if let (true, Some(name)) = (metadata.is_file(), entry.file_name().to_str()) {
                entries.insert(name.to_string(), file_id(&metadata));
            }
        }
        Ok(entries)
    }
}
