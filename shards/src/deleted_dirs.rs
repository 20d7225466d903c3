//! The partition directories of deleted topics. Deleting one is a rename to a
//! name no partition has (`<topic>-<partition>.<topic id>-delete`, as Kafka's
//! `-delete` suffix), done at once on the shard so the topic is gone and a
//! topic created again under its name starts empty; the files are removed by
//! a background thread, as `remove_dir_all` of a large log would stall the
//! shard. A restart removes what a stop left behind.

use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Partition directories end in `-<partition>`, so never in this.
const DELETED_SUFFIX: &str = "-delete";

/// Renames `dir`, a partition of the topic with id `topic_id`, to its deleted
/// name, which it returns. The rename is made durable by
/// [`weir_engine::durable::sync_dir`] of the parent, so that a crash cannot
/// bring the data back under the topic's name.
pub fn mark_deleted(dir: &Path, topic_id: Uuid) -> std::io::Result<PathBuf> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}{DELETED_SUFFIX}", topic_id.simple()));
    let deleted = dir.with_file_name(name);
    std::fs::rename(dir, &deleted)?;
    Ok(deleted)
}

/// Removes `dirs` on a thread of their own; failures are logged.
pub fn remove_in_background(dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new().name("weir-delete".into()).spawn(move || remove(&dirs));
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to remove deleted partitions: {e}");
    }
}

/// The deleted partition directories in `data_dir`, left by a stop before
/// their removal finished.
pub fn leftovers(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(DELETED_SUFFIX) && entry.file_type()?.is_dir() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

fn remove(dirs: &[PathBuf]) {
    for dir in dirs {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_partition_is_renamed_at_once_and_found_as_a_leftover() {
        let data = tempfile::tempdir().unwrap();
        let partition = data.path().join("t-delete-0");
        std::fs::create_dir(&partition).unwrap();
        std::fs::write(partition.join("00000000000000000000.log"), b"old").unwrap();
        std::fs::create_dir(data.path().join("u-1")).unwrap();
        std::fs::write(data.path().join("metadata.toml"), b"").unwrap();

        let id = Uuid::new_v4();
        let deleted = mark_deleted(&partition, id).unwrap();
        weir_engine::durable::sync_dir(data.path()).unwrap();
        assert!(!partition.exists());
        assert_eq!(deleted, data.path().join(format!("t-delete-0.{}-delete", id.simple())));
        assert_eq!(leftovers(data.path()).unwrap(), vec![deleted.clone()]);

        // The same name deleted again (a topic created again) does not collide.
        std::fs::create_dir(&partition).unwrap();
        let again = mark_deleted(&partition, Uuid::new_v4()).unwrap();
        let mut found = leftovers(data.path()).unwrap();
        found.sort();
        let mut expected = vec![deleted, again];
        expected.sort();
        assert_eq!(found, expected);

        remove(&found);
        assert_eq!(leftovers(data.path()).unwrap(), Vec::<PathBuf>::new());
        assert!(data.path().join("u-1").exists() && data.path().join("metadata.toml").exists());
    }
}
