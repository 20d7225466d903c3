//! Broker configuration: embedded defaults, overridable by a TOML file and flags.

use serde::Deserialize;
use std::path::PathBuf;

/// Everything a broker process needs to start. Field names follow Kafka's
/// settings where Kafka has one (e.g. `num_partitions` is `num.partitions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id in Metadata responses (`node.id`).
    pub node_id: i32,
    /// Address every shard listens on (SO_REUSEPORT).
    pub listen: String,
    /// host:port clients are told to connect to (`advertised.listeners`);
    /// unset, the listen address.
    pub advertise: Option<String>,
    /// Root of all partition logs and broker metadata.
    pub data_dir: PathBuf,
    /// Number of shards (executors pinned to cores); 0 means one per online core.
    pub shards: usize,
    /// Partitions of an auto-created topic, or of CreateTopics with -1 (`num.partitions`).
    pub default_partitions: i32,
    /// Create unknown topics on first Metadata/Produce (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// Roll a new segment at this size (`log.segment.bytes`).
    pub segment_bytes: u64,
    /// fdatasync after every write, not only for acks=all (`log.flush.interval.messages=1`).
    pub fsync_every_write: bool,
    /// Requests a connection may have in flight before the broker stops reading from it.
    pub max_in_flight_per_connection: usize,
    /// A new group waits this long for more members before its first generation
    /// (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Allowed consumer session timeouts (`group.min/max.session.timeout.ms`).
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Most members one group may have (`group.max.size`).
    pub group_max_size: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            listen: "127.0.0.1:9092".into(),
            advertise: None,
            data_dir: PathBuf::from("weir-data"),
            shards: 0,
            default_partitions: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            segment_bytes: 1 << 30,
            fsync_every_write: false,
            max_in_flight_per_connection: 64,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 10_000,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; keys missing from it keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// The number of shards to run: the configured count, or one per online core.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The address clients are told to connect to.
    pub fn advertised(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// The advertised address split into host and port.
    pub fn advertised_host_port(&self) -> Result<(String, i32), String> {
        let advertise = self.advertised();
        let (host, port) =
            advertise.rsplit_once(':').ok_or_else(|| format!("advertise address '{advertise}' has no port"))?;
        let port = port.parse::<u16>().map_err(|_| format!("advertise address '{advertise}' has a bad port"))?;
        Ok((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_only_given_keys() {
        let cfg: BrokerConfig = toml::from_str("listen = \"0.0.0.0:9000\"\nshards = 3").unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.shards, 3);
        assert_eq!(cfg.default_partitions, 1);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<BrokerConfig>("lissten = \"x\"").is_err());
    }

    #[test]
    fn advertise_splits_host_and_port() {
        let cfg = BrokerConfig { advertise: Some("[::1]:9093".into()), ..Default::default() };
        assert_eq!(cfg.advertised_host_port().unwrap(), ("::1".to_string(), 9093));
        let bad = BrokerConfig { advertise: Some("localhost".into()), ..Default::default() };
        assert!(bad.advertised_host_port().is_err());
        let unset = BrokerConfig { listen: "0.0.0.0:9000".into(), ..Default::default() };
        assert_eq!(unset.advertised_host_port().unwrap(), ("0.0.0.0".to_string(), 9000));
    }
}
