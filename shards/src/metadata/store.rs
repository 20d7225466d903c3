//! The metadata of a broker that is its own controller, kept in
//! `<data_dir>/metadata.toml` (replaced atomically: write, fsync, rename,
//! fsync dir) rather than in a quorum's log.

use super::{BrokerRegistration, MetadataChanges, MetadataSnapshot, TopicMetadata};
use crate::error::TopicError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;
use weir_engine::durable;

/// The current image and where it is persisted.
pub struct MetadataStore {
    path: PathBuf,
    current: Arc<MetadataSnapshot>,
}

impl MetadataStore {
    /// Loads `<data_dir>/metadata.toml`, or starts empty with a fresh
    /// cluster id.
    pub fn load(data_dir: &Path) -> Result<MetadataStore, String> {
        let path = data_dir.join("metadata.toml");
        let snapshot = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<MetadataSnapshot>(&text)
                .map_err(|e| format!("corrupt metadata file {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                MetadataSnapshot { cluster_id: Uuid::new_v4().simple().to_string(), ..MetadataSnapshot::default() }
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(MetadataStore { path, current: Arc::new(snapshot) })
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.current.clone()
    }

    /// Changes to plan against the current image.
    pub fn changes(&self) -> MetadataChanges {
        MetadataChanges::new(&self.current)
    }

    /// Persists planned changes, then makes them current; nothing changes
    /// if the file cannot be written. Returns the topics they removed.
    pub fn commit(&mut self, changes: MetadataChanges) -> Result<Vec<TopicMetadata>, TopicError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut next = MetadataSnapshot::clone(&self.current);
        let removed = changes.into_records().into_iter().filter_map(|record| next.apply(record)).collect();
        let storage = |e: std::io::Error| TopicError::Storage(e.to_string());
        let text = toml::to_string(&next).map_err(|e| TopicError::Storage(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(storage)?;
        durable::replace_file(&self.path, &self.path.with_extension("toml.tmp"), text.as_bytes()).map_err(storage)?;
        self.current = Arc::new(next);
        Ok(removed)
    }

    /// Plans changes with `plan` and commits them if it succeeds.
    pub fn change<T>(
        &mut self,
        plan: impl FnOnce(&mut MetadataChanges) -> Result<T, TopicError>,
    ) -> Result<T, TopicError> {
        let mut changes = self.changes();
        let planned = plan(&mut changes)?;
        self.commit(changes)?;
        Ok(planned)
    }

    /// Registers a broker (see [`MetadataChanges::register_broker`]).
    pub fn register_broker(&mut self, broker: BrokerRegistration) -> Result<(), TopicError> {
        let mut changes = self.changes();
        changes.register_broker(broker);
        self.commit(changes).map(drop)
    }
}
