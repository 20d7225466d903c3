//! The maintenance passes over a shard's logs: retention and compaction
//! (scheduled by runtime.rs, in a low-share task queue).

use super::Shard;
use std::rc::Rc;
use weir_engine::{now_ms, EngineError, PartitionLog};

impl Shard {
    /// Every log this shard has open, for the maintenance passes.
    pub(super) fn open_logs(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        let partitions = self.partitions.borrow().all_open();
        partitions.into_iter().map(|p| (p.topic.clone(), p.index, p.log.clone())).collect()
    }

    /// One `retention.ms` / `retention.bytes` pass over this shard's logs,
    /// one log at a time (Kafka's `log.retention.check.interval.ms` task).
    pub(crate) async fn enforce_retention(&self) {
        for (topic, partition, log) in self.open_logs() {
            if !log.config().cleanup_policy.deletes() {
                continue;
            }
            match log.enforce_retention(now_ms()).await {
                Ok(done) if done.segments_deleted > 0 => tracing::info!(
                    topic = %topic, partition, segments = done.segments_deleted, bytes = done.bytes_deleted,
                    log_start_offset = done.log_start_offset, "retention deleted segments"
                ),
                Ok(_) | Err(EngineError::Closed) => {}
                Err(e) => tracing::warn!(topic = %topic, partition, "retention failed: {e}"),
            }
        }
    }

    /// One compaction pass over this shard's logs of compacted topics, one
    /// log at a time (Kafka's log cleaner, every `log.cleaner.backoff.ms`).
    pub(crate) async fn compact_logs(&self) {
        for (topic, partition, log) in self.open_logs() {
            if !log.config().cleanup_policy.compacts() {
                continue;
            }
            match log.compact(now_ms()).await {
                Ok(done) if done.segments_rewritten > 0 => tracing::info!(
                    topic = %topic, partition, segments = done.segments_rewritten, records_removed = done.records_removed,
                    bytes_before = done.bytes_before, bytes_after = done.bytes_after, "compacted"
                ),
                Ok(_) | Err(EngineError::Closed) => {}
                Err(e) => tracing::warn!(topic = %topic, partition, "compaction failed: {e}"),
            }
        }
    }
}
