//! Topic metadata: what topics exist, their ids and partition counts.
//!
//! The controller shard owns the one mutable [`MetadataStore`]; every shard
//! reads an immutable [`MetadataSnapshot`] that the controller replaces after
//! each change. The store is persisted as TOML in `<data_dir>/metadata.toml`,
//! replaced atomically (write, fsync, rename, fsync dir).

use crate::error::TopicError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so one request cannot ask for millions.
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

/// A topic to create: partitions < 1 means the broker default.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// An immutable view of all topics, shared by every shard.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    /// Increases with every change; shards ignore a snapshot older than theirs.
    #[serde(skip)]
    pub version: u64,
    pub cluster_id: String,
    #[serde(default)]
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// Whether `partition` exists in `topic`.
    pub fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.topic(topic).is_some_and(|t| (0..t.partitions).contains(&partition))
    }
}

/// Kafka's rule: 1..=249 chars of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: &str| Err(TopicError::InvalidName(format!("'{name}': {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The controller's mutable copy of the metadata and where it is persisted.
pub struct MetadataStore {
    path: PathBuf,
    current: Arc<MetadataSnapshot>,
}

impl MetadataStore {
    /// Loads `<data_dir>/metadata.toml`, or starts empty with a fresh cluster id.
    pub fn load(data_dir: &Path) -> Result<MetadataStore, String> {
        let path = data_dir.join("metadata.toml");
        let snapshot = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<MetadataSnapshot>(&text)
                .map_err(|e| format!("corrupt metadata file {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataSnapshot {
                version: 0,
                cluster_id: Uuid::new_v4().simple().to_string(),
                topics: BTreeMap::new(),
            },
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(MetadataStore { path, current: Arc::new(snapshot) })
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.current.clone()
    }

    /// Validates and records a new topic, persisted before it returns.
    pub fn create_topic(&mut self, topic: &NewTopic, default_partitions: i32) -> Result<TopicMetadata, TopicError> {
        validate_topic_name(&topic.name)?;
        if self.current.topics.contains_key(&topic.name) {
            return Err(TopicError::AlreadyExists);
        }
        let partitions = if topic.partitions < 1 { default_partitions } else { topic.partitions };
        if !(1..=MAX_PARTITIONS).contains(&partitions) || topic.partitions == 0 {
            return Err(TopicError::InvalidPartitions(topic.partitions));
        }
        if topic.replication_factor > 1 || topic.replication_factor == 0 {
            return Err(TopicError::InvalidReplicationFactor(topic.replication_factor));
        }
        let created = TopicMetadata { name: topic.name.clone(), id: Uuid::new_v4(), partitions };
        let mut next = self.clone_current();
        next.topics.insert(created.name.clone(), created.clone());
        self.persist(next)?;
        Ok(created)
    }

    /// Removes a topic; returns what it was.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, TopicError> {
        let mut next = self.clone_current();
        let removed = next.topics.remove(name).ok_or(TopicError::Unknown)?;
        self.persist(next)?;
        Ok(removed)
    }

    fn clone_current(&self) -> MetadataSnapshot {
        MetadataSnapshot {
            version: self.current.version + 1,
            cluster_id: self.current.cluster_id.clone(),
            topics: self.current.topics.clone(),
        }
    }

    /// Atomically replaces the file, then the in-memory snapshot.
    fn persist(&mut self, next: MetadataSnapshot) -> Result<(), TopicError> {
        let storage = |e: std::io::Error| TopicError::Storage(e.to_string());
        let text = toml::to_string(&next).map_err(|e| TopicError::Storage(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(storage)?;
        let tmp = self.path.with_extension("toml.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(storage)?;
        file.write_all(text.as_bytes()).map_err(storage)?;
        file.sync_all().map_err(storage)?;
        std::fs::rename(&tmp, &self.path).map_err(storage)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(storage)?;
        self.current = Arc::new(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic { name: name.into(), partitions, replication_factor: -1 }
    }

    #[test]
    fn topics_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path()).unwrap();
        let created = store.create_topic(&new_topic("clicks", 3), 1).unwrap();
        store.create_topic(&new_topic("defaulted", -1), 5).unwrap();
        let reloaded = MetadataStore::load(dir.path()).unwrap().snapshot();
        assert_eq!(reloaded.cluster_id, store.snapshot().cluster_id);
        assert_eq!(reloaded.topic("clicks"), Some(&created));
        assert_eq!(reloaded.topic("defaulted").unwrap().partitions, 5);
        store.delete_topic("clicks").unwrap();
        assert!(MetadataStore::load(dir.path()).unwrap().snapshot().topic("clicks").is_none());
    }

    #[test]
    fn bad_topics_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path()).unwrap();
        store.create_topic(&new_topic("a", 1), 1).unwrap();
        assert_eq!(store.create_topic(&new_topic("a", 1), 1), Err(TopicError::AlreadyExists));
        for name in ["", ".", "..", "a/b", "spaces no", &"x".repeat(250)] {
            assert!(matches!(store.create_topic(&new_topic(name, 1), 1), Err(TopicError::InvalidName(_))));
        }
        assert_eq!(store.create_topic(&new_topic("z", 0), 1), Err(TopicError::InvalidPartitions(0)));
        let rf3 = NewTopic { replication_factor: 3, ..new_topic("r", 1) };
        assert_eq!(store.create_topic(&rf3, 1), Err(TopicError::InvalidReplicationFactor(3)));
        assert_eq!(store.delete_topic("nope"), Err(TopicError::Unknown));
    }
}
