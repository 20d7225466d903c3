//! DescribeLogDirs: the broker's one log directory (its data dir), the size
//! of each partition stored there, and (v4) the file system's total and
//! usable bytes. A single replica has no future log and lags nothing. With
//! ACLs it needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED
//! and no log dir, as Kafka).

use super::ClientInfo;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if !client.may_on_cluster(shard, Operation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // None: every partition; else those named.
    let wanted: Option<HashSet<(&str, i32)>> = request
        .topics
        .as_ref()
        .map(|topics| topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.as_str(), p))).collect());
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    // Partitions whose log could not be opened are offline and not listed.
    for stats in shard.gather_stats().await.into_iter().flatten() {
        for p in stats.partitions {
            if wanted.as_ref().is_some_and(|w| !w.contains(&(p.topic.as_str(), p.partition))) {
                continue;
            }
            let size = i64::try_from(p.size_bytes).unwrap_or(i64::MAX);
            let partition =
                DescribeLogDirsPartition::default().with_partition_index(p.partition).with_partition_size(size);
            topics.entry(p.topic).or_default().push(partition);
        }
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default().with_name(TopicName(super::str_bytes(name))).with_partitions(partitions)
        })
        .collect();
    let data_dir = &shard.config().data_dir;
    let log_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone());
    let (total_bytes, usable_bytes) = disk_space(&log_dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(super::str_bytes(log_dir.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, usable) bytes of the file system holding `dir`, as Java's
/// `FileStore.getTotalSpace` and `getUsableSpace` (what Kafka reports).
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we own, and `path`
    // is a NUL-terminated string that outlives the call.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(stat.f_frsize as u64)).unwrap_or(i64::MAX);
    Some((bytes(stat.f_blocks as u64), bytes(stat.f_bavail as u64)))
}
