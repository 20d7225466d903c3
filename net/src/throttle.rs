//! A connection's side of the client quotas: the quotas that apply to it
//! (resolved once per metadata image and client id, not per request), the
//! recording of its produce and fetch bytes against them, and its mute
//! (KIP-219: the answer goes out at once with `throttle_time_ms`, then the
//! connection reads nothing more for that long).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;
use weir_shards::metadata::quota::QuotaKey;
use weir_shards::throttle::Bucket;
use weir_shards::Shard;

/// The quota of one key that applies to a connection, and the bucket it
/// is counted in (shared with every connection of the same entity).
struct Limit {
    quota: f64,
    bucket: Arc<Bucket>,
}

/// The quotas resolved for an image version, user and client id.
struct Resolved {
    version: u64,
    user: String,
    client_id: String,
    produce: Option<Limit>,
    fetch: Option<Limit>,
}

#[derive(Default)]
pub struct ConnectionQuotas {
    resolved: RefCell<Option<Resolved>>,
    muted_until_ms: Cell<u64>,
}

impl ConnectionQuotas {
    /// Records `bytes` of a produce request (`ProducerByteRate`) or fetch
    /// response (`ConsumerByteRate`) of `principal` with `client_id`;
    /// returns the throttle time (0 when under the quota or none is set)
    /// and mutes the connection that long. The quota's user is the
    /// principal's name (`ANONYMOUS` unauthenticated), as Kafka's.
    pub fn record(&self, shard: &Shard, principal: &str, client_id: &str, key: QuotaKey, bytes: usize) -> i32 {
        let snapshot = shard.metadata();
        if snapshot.quotas.is_empty() {
            return 0; // the common case costs one check
        }
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let mut resolved = self.resolved.borrow_mut();
        let current = resolved
            .as_ref()
            .is_some_and(|r| r.version == snapshot.version && r.user == user && r.client_id == client_id);
        let now_ms = weir_runtime::clock::now_ms().max(0) as u64;
        if !current {
            let limit = |key| {
                let (quota, entity) = snapshot.quotas.quota_for(user, client_id, key)?;
                Some(Limit { quota, bucket: shard.quota_rates().bucket(key, entity, now_ms) })
            };
            *resolved = Some(Resolved {
                version: snapshot.version,
                user: user.to_string(),
                client_id: client_id.to_string(),
                produce: limit(QuotaKey::ProducerByteRate),
                fetch: limit(QuotaKey::ConsumerByteRate),
            });
        }
        let resolved = resolved.as_ref().expect("resolved above");
        let limit = match key {
            QuotaKey::ProducerByteRate => &resolved.produce,
            _ => &resolved.fetch,
        };
        let Some(Limit { quota, bucket }) = limit else { return 0 };
        let throttle_ms = bucket.record(now_ms, bytes as u64, *quota);
        if throttle_ms > 0 {
            self.muted_until_ms.set(self.muted_until_ms.get().max(now_ms + throttle_ms));
        }
        throttle_ms.min(i32::MAX as u64) as i32
    }

    /// Waits out the connection's mute, if any.
    pub async fn unmuted(&self) {
        let now_ms = weir_runtime::clock::now_ms().max(0) as u64;
        let until = self.muted_until_ms.get();
        if until > now_ms {
            weir_runtime::clock::sleep(Duration::from_millis(until - now_ms)).await;
        }
    }
}
