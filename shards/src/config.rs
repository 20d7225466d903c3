//! Broker configuration: embedded defaults, overridable by a TOML file and flags.

use crate::metadata::{BrokerRegistration, Endpoint, TopicDefaults};
use serde::Deserialize;
use std::path::PathBuf;
use uuid::Uuid;
use weir_quorum::{parse_voters, QuorumConfig};

/// Everything a broker process needs to start. Field names follow Kafka's
/// settings where Kafka has one (e.g. `num_partitions` is `num.partitions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id in Metadata responses (`node.id`).
    pub node_id: i32,
    /// This process of the broker, new at each start: its registration with
    /// the controller carries it, and the broker takes its partitions' roles
    /// only from images that hold that registration.
    #[serde(skip, default = "Uuid::new_v4")]
    pub incarnation: Uuid,
    /// The rack (or zone) this broker is in (`broker.rack`): replicas of a
    /// partition are placed on as many racks as they can.
    pub broker_rack: Option<String>,
    /// Address every shard listens on (SO_REUSEPORT); port 0 binds a free port (`listen.rs`).
    pub listen: String,
    /// The voters of the metadata quorum (`controller.quorum.voters`):
    /// `id@host:port,...`, this broker among them. Empty: the broker is its
    /// own controller, with its metadata in `metadata.toml`.
    pub controller_quorum_voters: String,
    /// How often this broker tells the active controller it is alive
    /// (`broker.heartbeat.interval.ms`; Kafka's default, 2000, is ours too
    /// slow for the session timeout below: 500 gives a session four
    /// heartbeats).
    pub broker_heartbeat_interval_ms: u64,
    /// A broker the active controller has not heard from for this long is
    /// fenced: it leaves the ISRs and its partitions get new leaders
    /// (`broker.session.timeout.ms`). Kafka's default is 9000; Weir's 2000
    /// aims at failover under 3 s (a lost controller adds its election and
    /// a session timeout, as its successor starts every broker's clock anew).
    pub broker_session_timeout_ms: u64,
    /// How long a broker of a cluster, asked to stop, waits for the active
    /// controller to move the leadership of its partitions to other
    /// in-sync replicas before it stops anyway (controlled shutdown; Kafka
    /// waits up to 5 minutes). 0: no controlled shutdown, the partitions
    /// move a session timeout after the broker stopped.
    pub controlled_shutdown_timeout_ms: u64,
    /// Where this node listens for the quorum's other nodes (the controller
    /// listener); empty: its own address in `controller_quorum_voters`. A
    /// broker that is not a voter must give it: the leader replicates the
    /// metadata log to it there (it joins as a learner).
    pub controller_listen: String,
    /// A follower that has not caught up with its leader for this long
    /// leaves the ISR (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// The active controller moves leadership back to the preferred
    /// replicas (the first of each partition's) on its own
    /// (`auto.leader.rebalance.enable`).
    pub auto_leader_rebalance_enable: bool,
    /// How often it looks (`leader.imbalance.check.interval.seconds`).
    pub leader_imbalance_check_interval_seconds: u64,
    /// It moves a broker's partitions back only when the broker leads more
    /// than this percentage of those it is the preferred replica of
    /// elsewhere (`leader.imbalance.per.broker.percentage`).
    pub leader_imbalance_per_broker_percentage: u32,
    /// Kafka's `listeners`: `NAME://host:port,...`, e.g.
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093` (an empty host is every
    /// interface). A name is a security protocol (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL) or one `listener_security_protocol_map`
    /// maps to one. Every shard serves every listener. Empty: one PLAINTEXT
    /// listener on `listen` ([`Self::listeners`]).
    pub listeners: String,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...`, e.g.
    /// `INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL`; a listener named after a
    /// security protocol needs no entry.
    pub listener_security_protocol_map: String,
    /// Kafka's `advertised.listeners`, `NAME://host:port,...`: where the
    /// clients of each listener are told brokers are. A listener it does
    /// not name advertises its own address (with the port it bound).
    pub advertised_listeners: String,
    /// The listener other brokers of the cluster connect to
    /// (`inter.broker.listener.name`); Kafka's default, the listener named
    /// PLAINTEXT. In a cluster it must name a PLAINTEXT listener (brokers
    /// speak neither TLS nor SASL to each other yet); a broker alone has no
    /// inter-broker traffic and needs none.
    pub inter_broker_listener_name: String,
    /// The listeners as this process bound them: [`Self::listeners`] with
    /// each port 0 replaced by the port it got (set by the runtime at start).
    #[serde(skip)]
    pub bound_listeners: Vec<Listener>,
    /// A TLS listener's certificate chain, PEM, the server's first
    /// (`ssl.certificate.location`). Reread when it changes (by mtime, checked
    /// at most once a second as connections arrive).
    pub ssl_certificate_location: Option<PathBuf>,
    /// The private key of `ssl_certificate_location`, PEM (PKCS#8, PKCS#1 or
    /// SEC1) (`ssl.key.location`).
    pub ssl_key_location: Option<PathBuf>,
    /// The CA certificates, PEM, that client certificates must chain to
    /// (`ssl.ca.location`); needed when `ssl_client_auth` is not none.
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificates on a TLS listener (`ssl.client.auth`): `none`,
    /// `requested` (checked when sent) or `required`.
    pub ssl_client_auth: SslClientAuth,
    /// The SASL mechanisms a SASL listener offers (`sasl.enabled.mechanisms`).
    pub sasl_enabled_mechanisms: Vec<String>,
    /// A SASL connection must authenticate again within this long or be
    /// closed (`connections.max.reauth.ms`, KIP-368); 0: never.
    pub connections_max_reauth_ms: u64,
    /// Client quotas are measured over this many samples
    /// (`quota.window.num`)...
    pub quota_window_num: u32,
    /// ...of this many seconds each (`quota.window.size.seconds`).
    pub quota_window_size_seconds: u32,
    /// Every request is checked against the ACLs (Kafka's
    /// `authorizer.class.name` set to its StandardAuthorizer); off, every
    /// client may do everything.
    pub acl_enabled: bool,
    /// Principals the ACLs never refuse, `;`-separated (`super.users`),
    /// e.g. `User:admin;User:ANONYMOUS`.
    pub super_users: String,
    /// A resource no ACL names is open to everyone
    /// (`allow.everyone.if.no.acl.found`); off, only super users may use it.
    pub allow_everyone_if_no_acl_found: bool,
    /// host:port the first listener's clients are told to connect to (the
    /// one-listener form of `advertised_listeners`, which it must not be
    /// given with); unset, the listener's own address.
    pub advertise: Option<String>,
    /// Root of all partition logs and broker metadata.
    pub data_dir: PathBuf,
    /// Number of shards (executors pinned to cores); 0 means one per core
    /// of `cpuset`.
    pub shards: usize,
    /// The cores the shards are pinned to, as a Linux CPU list ("0-3,8");
    /// empty: every online core. Brokers that share a machine each take
    /// their own.
    pub cpuset: String,
    /// Partitions of an auto-created topic, or of CreateTopics with -1 (`num.partitions`).
    pub default_partitions: i32,
    /// Replicas of each partition of an auto-created topic, or of
    /// CreateTopics with -1 (`default.replication.factor`).
    pub default_replication_factor: i16,
    /// Create unknown topics on first Metadata/Produce (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// Most record bytes one Fetch response carries, whatever the client
    /// asks for (`fetch.max.bytes`; the first batch still goes whole, KIP-74).
    /// Partitions are read against this budget, so it also bounds what one
    /// fetch holds in memory.
    pub fetch_max_bytes: usize,
    /// Roll a new segment at this size (`log.segment.bytes`).
    pub segment_bytes: u64,
    /// fdatasync after every write, not only for acks=all (`log.flush.interval.messages=1`).
    pub fsync_every_write: bool,
    /// Requests a connection may have in flight before the broker stops reading from it.
    pub max_in_flight_per_connection: usize,
    /// Sum of the frame sizes of one connection's in-flight requests before the
    /// broker stops reading from it (Kafka's `queued.max.request.bytes`, here
    /// per connection). A single larger frame is still served, alone.
    pub queued_max_request_bytes: usize,
    /// Most client connections the broker holds at once, all shards together
    /// (`max.connections`); a new connection over it is closed at once.
    pub max_connections: usize,
    /// Most connections from one IP address (`max.connections.per.ip`); a new
    /// connection over it is closed at once.
    pub max_connections_per_ip: usize,
    /// A connection that sends no request for this long is closed
    /// (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A connection whose responses cannot be written for this long (the
    /// client stopped reading them) is closed, so it holds neither memory nor
    /// a task forever. Kafka's clients give up on a request after
    /// `request.timeout.ms`, 30 s by default; this is the same.
    pub response_write_timeout_ms: u64,
    /// host:port of the admin HTTP endpoint (`GET /health`, `GET /metrics`);
    /// empty: no admin endpoint.
    pub admin_listen: String,
    /// For tests only: the broker's clock can be moved forward with
    /// `POST /test/clock?advance_ms=N` on the admin endpoint, so tests of
    /// time-based behaviour (segment.ms, transaction and session timeouts)
    /// need not wait (`weir_runtime::clock`). Never set in production.
    pub test_clock: bool,
    /// A new group waits this long for more members before its first generation
    /// (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Allowed consumer session timeouts (`group.min/max.session.timeout.ms`).
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Most members one group may have (`group.max.size`).
    pub group_max_size: usize,
    /// Consumer-protocol (KIP-848) members: the session timeout and the
    /// heartbeat interval the coordinator tells them
    /// (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`).
    pub group_consumer_session_timeout_ms: u64,
    pub group_consumer_heartbeat_interval_ms: u64,
    /// How often each shard applies `retention.ms` / `retention.bytes` to its
    /// logs (`log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: u64,
    /// How often each shard compacts the logs of compacted topics
    /// (`log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// A partition forgets the state of a producer id that wrote nothing to
    /// it for this long (`producer.id.expiration.ms`; by the batches'
    /// maxTimestamp, as Kafka), unless it has a transaction open there. Its
    /// next batch must then start a sequence again.
    pub producer_id_expiration_ms: u64,
    /// How often each shard looks for expired producer ids
    /// (`producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_check_interval_ms: u64,
    /// The transaction coordinator forgets a transactional id with no
    /// transaction in progress after this long without a state change
    /// (`transactional.id.expiration.ms`), writing a tombstone for it.
    pub transactional_id_expiration_ms: u64,
    /// How often the coordinator looks for expired transactional ids
    /// (`transaction.remove.expired.transaction.cleanup.interval.ms`).
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// Replicas of each `__consumer_offsets` partition
    /// (`offsets.topic.replication.factor`), at most the live brokers when
    /// the topic is created.
    pub offsets_topic_replication_factor: i16,
    /// Replicas of each `__transaction_state` partition
    /// (`transaction.state.log.replication.factor`), at most the live
    /// brokers when the topic is created.
    pub transaction_state_log_replication_factor: i16,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            incarnation: Uuid::new_v4(),
            broker_rack: None,
            listen: "127.0.0.1:9092".into(),
            controller_quorum_voters: String::new(),
            controller_listen: String::new(),
            broker_heartbeat_interval_ms: 500,
            broker_session_timeout_ms: 2000,
            controlled_shutdown_timeout_ms: 30_000,
            replica_lag_time_max_ms: 30_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            listeners: String::new(),
            listener_security_protocol_map: String::new(),
            advertised_listeners: String::new(),
            inter_broker_listener_name: "PLAINTEXT".into(),
            bound_listeners: Vec::new(),
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_ca_location: None,
            ssl_client_auth: SslClientAuth::None,
            sasl_enabled_mechanisms: SASL_MECHANISMS.iter().map(|m| m.to_string()).collect(),
            connections_max_reauth_ms: 0,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            acl_enabled: false,
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            advertise: None,
            data_dir: PathBuf::from("weir-data"),
            shards: 0,
            cpuset: String::new(),
            default_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            fetch_max_bytes: 57_671_680,
            segment_bytes: 1 << 30,
            fsync_every_write: false,
            max_in_flight_per_connection: 64,
            queued_max_request_bytes: 104_857_600,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            response_write_timeout_ms: 30_000,
            admin_listen: "127.0.0.1:9644".into(),
            test_clock: false,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 10_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_backoff_ms: 15_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            transactional_id_expiration_ms: 604_800_000,
            offsets_topic_replication_factor: 3,
            transaction_state_log_replication_factor: 3,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        }
    }
}

/// The SASL mechanisms the broker implements.
pub const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A listener's security protocol (Kafka's names). In broker registrations
/// (postcard, by position): new protocols go at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SecurityProtocol {
    Plaintext,
    SaslPlaintext,
    Ssl,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections authenticate with SASL.
    pub fn is_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    /// Whether connections speak TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// The protocol Kafka names `name` (any case).
    fn from_name(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }
}

/// One listener: Kafka's listener name, its security protocol, the address
/// it binds and the one its clients are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Upper case, as Kafka normalises listener names.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// host:port to bind; port 0 binds a free port.
    pub address: String,
    /// host:port from `advertised_listeners` (or `advertise`); None: `address`.
    pub advertised: Option<String>,
}

impl Listener {
    /// The advertised host and port: `advertised`, else the bound address.
    pub fn advertised_host_port(&self) -> Result<(String, i32), String> {
        split_host_port(self.advertised.as_deref().unwrap_or(&self.address))
    }
}

/// `host:port` (IPv6 hosts in brackets) as host and port.
fn split_host_port(address: &str) -> Result<(String, i32), String> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("address '{address}' has no port"))?;
    let port = port.parse::<u16>().map_err(|_| format!("address '{address}' has a bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
}

/// Kafka's `NAME://host:port,...` as (upper-case name, host:port) pairs; an
/// empty host is every interface. `setting` names the key in errors.
fn parse_listener_list(setting: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut parsed: Vec<(String, String)> = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let (name, address) =
            entry.split_once("://").ok_or_else(|| format!("{setting}: '{entry}' is not NAME://host:port"))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(format!("{setting}: '{entry}' has no listener name"));
        }
        if parsed.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("{setting}: listener name {name} is given twice"));
        }
        let address = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
        split_host_port(&address).map_err(|e| format!("{setting}: {name}: {e}"))?;
        parsed.push((name, address));
    }
    Ok(parsed)
}

/// Kafka's `ssl.client.auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SslClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// One is asked for; a client without one connects, one with a
    /// certificate that does not chain to `ssl_ca_location` does not.
    Requested,
    /// A client without a valid certificate cannot connect.
    Required,
}

impl std::str::FromStr for SslClientAuth {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(SslClientAuth::None),
            "requested" => Ok(SslClientAuth::Requested),
            "required" => Ok(SslClientAuth::Required),
            other => Err(format!("ssl_client_auth '{other}' is not none, requested or required")),
        }
    }
}

impl BrokerConfig {
    /// Whether `principal` is one of `super_users`.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.split(';').any(|user| user.trim() == principal)
    }

    /// Reads a TOML file; keys missing from it keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// The configured listeners, in the order given: `listeners` (Kafka's
    /// syntax, with `listener_security_protocol_map`, `advertised_listeners`
    /// and `advertise`) or, without it, PLAINTEXT on `listen`. Refuses what
    /// cannot be served: an unknown protocol, a name or a port given twice,
    /// an advertised listener without its listener.
    pub fn listeners(&self) -> Result<Vec<Listener>, String> {
        let given = match self.listeners.trim() {
            "" => vec![("PLAINTEXT".to_string(), self.listen.clone())],
            text => parse_listener_list("listeners", text)?,
        };
        let map = self.security_protocol_map()?;
        let mut advertised = match self.advertised_listeners.trim() {
            "" => Vec::new(),
            _ if self.advertise.is_some() => {
                return Err("advertise and advertised_listeners are two forms of one setting: give one".into())
            }
            text => parse_listener_list("advertised_listeners", text)?,
        };
        if let Some((name, _)) = advertised.iter().find(|(name, _)| given.iter().all(|(listener, _)| listener != name))
        {
            return Err(format!("advertised_listeners: {name} is not one of the listeners"));
        }
        if let Some((name, address)) = advertised.iter().find(|(_, address)| address.ends_with(":0")) {
            return Err(format!("advertised_listeners: {name} advertises port 0 ({address})"));
        }
        if let (Some(advertise), Some((first, _))) = (&self.advertise, given.first()) {
            split_host_port(advertise).map_err(|e| format!("advertise: {e}"))?;
            advertised.push((first.clone(), advertise.clone()));
        }
        let mut listeners: Vec<Listener> = Vec::with_capacity(given.len());
        for (name, address) in given {
            let protocol = map
                .iter()
                .find(|(mapped, _)| *mapped == name)
                .map(|&(_, protocol)| protocol)
                .or_else(|| SecurityProtocol::from_name(&name))
                .ok_or_else(|| {
                    format!("listeners: {name} is neither a security protocol nor in listener_security_protocol_map")
                })?;
            let (_, port) = split_host_port(&address)?;
            // Port 0 is a free port each: never the same twice.
            let same_port = |l: &&Listener| port != 0 && split_host_port(&l.address).is_ok_and(|(_, p)| p == port);
            if let Some(other) = listeners.iter().find(same_port) {
                return Err(format!("listeners: {} and {name} both use port {port}", other.name));
            }
            let advertised = advertised.iter().find(|(advertised, _)| *advertised == name).map(|(_, a)| a.clone());
            listeners.push(Listener { name, protocol, address, advertised });
        }
        Ok(listeners)
    }

    /// `listener_security_protocol_map` as (upper-case name, protocol) pairs.
    fn security_protocol_map(&self) -> Result<Vec<(String, SecurityProtocol)>, String> {
        let text = self.listener_security_protocol_map.trim();
        let mut map: Vec<(String, SecurityProtocol)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|_| !text.is_empty()) {
            let bad = || format!("listener_security_protocol_map: '{entry}' is not NAME:PROTOCOL");
            let (name, protocol) = entry.split_once(':').ok_or_else(bad)?;
            let name = name.trim().to_ascii_uppercase();
            let protocol = SecurityProtocol::from_name(protocol.trim()).ok_or_else(bad)?;
            if name.is_empty() || map.iter().any(|(seen, _)| *seen == name) {
                return Err(format!("listener_security_protocol_map: '{entry}' names no listener or one twice"));
            }
            map.push((name, protocol));
        }
        Ok(map)
    }

    /// The listener other brokers connect to, as bound: the one
    /// `inter_broker_listener_name` names, if it is among them.
    pub fn inter_broker_listener(&self) -> Option<&Listener> {
        let name = self.inter_broker_listener_name.trim().to_ascii_uppercase();
        self.bound_listeners.iter().find(|l| l.name == name)
    }

    /// Refuses limits that would make the broker unusable.
    /// How client quotas are measured.
    pub fn quota_window(&self) -> crate::throttle::QuotaWindow {
        crate::throttle::QuotaWindow {
            samples: self.quota_window_num,
            sample_ms: self.quota_window_size_seconds as u64 * 1000,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let listeners = self.listeners()?;
        if let Some(unknown) = self.sasl_enabled_mechanisms.iter().find(|m| !SASL_MECHANISMS.contains(&m.as_str())) {
            return Err(format!("sasl_enabled_mechanisms: {unknown} is not one of {SASL_MECHANISMS:?}"));
        }
        for Listener { name, protocol, .. } in &listeners {
            if protocol.is_sasl() && self.sasl_enabled_mechanisms.is_empty() {
                return Err(format!("listener {name} is SASL: it needs at least one of sasl_enabled_mechanisms"));
            }
            if protocol.is_tls() && (self.ssl_certificate_location.is_none() || self.ssl_key_location.is_none()) {
                return Err(format!(
                    "listener {name} is {}: it needs ssl_certificate_location and ssl_key_location",
                    protocol.name()
                ));
            }
            if protocol.is_tls() && self.ssl_client_auth != SslClientAuth::None && self.ssl_ca_location.is_none() {
                return Err("ssl_client_auth requested or required needs ssl_ca_location".into());
            }
        }
        if !self.controller_quorum_voters.is_empty() {
            let name = self.inter_broker_listener_name.trim().to_ascii_uppercase();
            match listeners.iter().find(|l| l.name == name) {
                None => {
                    return Err(format!(
                        "inter_broker_listener_name {name} is not one of the listeners: the brokers of a cluster \
                         connect to each other there"
                    ))
                }
                Some(l) if l.protocol != SecurityProtocol::Plaintext => {
                    return Err(format!(
                        "inter_broker_listener_name {name} is a {} listener: brokers speak neither TLS nor SASL to \
                         each other yet, so the inter-broker listener must be PLAINTEXT",
                        l.protocol.name()
                    ))
                }
                Some(_) => {}
            }
        }
        let replicas = |factor: i16| u64::try_from(factor).unwrap_or(0);
        let at_least_one = [
            ("default_replication_factor", replicas(self.default_replication_factor)),
            ("offsets_topic_replication_factor", replicas(self.offsets_topic_replication_factor)),
            ("transaction_state_log_replication_factor", replicas(self.transaction_state_log_replication_factor)),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_in_flight_per_connection", self.max_in_flight_per_connection as u64),
            ("queued_max_request_bytes", self.queued_max_request_bytes as u64),
            ("connections_max_idle_ms", self.connections_max_idle_ms),
            ("broker_heartbeat_interval_ms", self.broker_heartbeat_interval_ms),
            ("leader_imbalance_check_interval_seconds", self.leader_imbalance_check_interval_seconds),
            ("response_write_timeout_ms", self.response_write_timeout_ms),
            ("quota_window_num", self.quota_window_num as u64),
            ("quota_window_size_seconds", self.quota_window_size_seconds as u64),
            ("producer_id_expiration_ms", self.producer_id_expiration_ms),
            ("producer_id_expiration_check_interval_ms", self.producer_id_expiration_check_interval_ms),
            ("transactional_id_expiration_ms", self.transactional_id_expiration_ms),
            (
                "transaction_remove_expired_transaction_cleanup_interval_ms",
                self.transaction_remove_expired_transaction_cleanup_interval_ms,
            ),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        self.cpus()?;
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err("broker_heartbeat_interval_ms must be below broker_session_timeout_ms".into());
        }
        if self.fetch_max_bytes < 1024 {
            return Err("fetch_max_bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// What CreateTopics gives a topic that leaves them to the broker.
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults { partitions: self.default_partitions, replication_factor: self.default_replication_factor }
    }

    /// The metadata quorum this broker votes in (or learns from, when its
    /// node_id is not a voter), if `controller_quorum_voters` names one; its
    /// log lives in `<data_dir>/__cluster_metadata`.
    pub fn quorum(&self) -> Result<Option<QuorumConfig>, String> {
        if self.controller_quorum_voters.is_empty() {
            return Ok(None);
        }
        let voters = parse_voters(&self.controller_quorum_voters).map_err(|e| e.to_string())?;
        let id = u64::try_from(self.node_id).map_err(|_| format!("node_id {} must not be negative", self.node_id))?;
        let listen = match self.controller_listen.as_str() {
            "" => *voters.get(&id).ok_or_else(|| {
                format!(
                    "node_id {id} is not among controller_quorum_voters '{}': a broker that does not vote needs \
                     controller_listen, where the metadata log is replicated to it",
                    self.controller_quorum_voters
                )
            })?,
            given => given.parse().map_err(|e| format!("controller_listen '{given}': {e}"))?,
        };
        let dir = self.data_dir.join("__cluster_metadata");
        Ok(Some(QuorumConfig::new(id, voters, listen, dir)))
    }

    /// This broker as it registers with the controller, in this process's
    /// incarnation.
    pub fn registration(&self) -> Result<BrokerRegistration, String> {
        let endpoints = (self.bound_listeners.iter())
            .map(|l| {
                let (host, port) = l.advertised_host_port()?;
                Ok(Endpoint { listener: l.name.clone(), host, port, protocol: l.protocol })
            })
            .collect::<Result<Vec<Endpoint>, String>>()?;
        // Where other brokers connect: the inter-broker listener; a broker
        // alone may have none (it has no inter-broker traffic).
        let inter_broker = self.inter_broker_listener().map(|l| l.name.as_str());
        let reached = (endpoints.iter().find(|e| Some(e.listener.as_str()) == inter_broker))
            .or(endpoints.first())
            .ok_or("the broker has no listener")?;
        Ok(BrokerRegistration {
            id: self.node_id,
            incarnation: self.incarnation,
            host: reached.host.clone(),
            port: reached.port,
            rack: self.broker_rack.clone(),
            fenced: false,
            endpoints,
        })
    }

    /// The number of shards to run: the configured count, or one per core
    /// of the cpuset (of the machine, without one).
    pub fn shard_count(&self) -> usize {
        match self.cpus() {
            _ if self.shards > 0 => self.shards,
            Ok(Some(cpus)) => cpus.len(),
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The cores of `cpuset`, sorted; None when it is empty (every core).
    pub fn cpus(&self) -> Result<Option<Vec<usize>>, String> {
        if self.cpuset.trim().is_empty() {
            return Ok(None);
        }
        let bad = |part: &str| format!("cpuset '{}': '{part}' is not a core or a range of cores", self.cpuset);
        let mut cpus = std::collections::BTreeSet::new();
        for part in self.cpuset.split(',').map(str::trim) {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let first: usize = first.trim().parse().map_err(|_| bad(part))?;
            let last: usize = last.trim().parse().map_err(|_| bad(part))?;
            if first > last {
                return Err(bad(part));
            }
            cpus.extend(first..=last);
        }
        Ok(Some(cpus.into_iter().collect()))
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
        assert_eq!(cfg.connections_max_idle_ms, 600_000);
        let limits: BrokerConfig =
            toml::from_str("max_connections = 10\nmax_connections_per_ip = 2\nadmin_listen = \"\"").unwrap();
        assert_eq!((limits.max_connections, limits.max_connections_per_ip), (10, 2));
        assert!(limits.admin_listen.is_empty());
    }

    #[test]
    fn a_cpuset_is_a_linux_cpu_list() {
        let cpus = |list: &str| BrokerConfig { cpuset: list.into(), ..Default::default() }.cpus();
        assert_eq!(cpus(""), Ok(None));
        assert_eq!(cpus("3"), Ok(Some(vec![3])));
        assert_eq!(cpus("0-2, 8,1"), Ok(Some(vec![0, 1, 2, 8])));
        for bad in ["x", "3-1", "1,", "-2", "1-2-3"] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
        let pinned = BrokerConfig { cpuset: "4-5".into(), ..Default::default() };
        assert_eq!(pinned.shard_count(), 2);
        assert_eq!(BrokerConfig { shards: 3, ..pinned }.shard_count(), 3);
    }

    fn listeners_of(toml_text: &str) -> Result<Vec<Listener>, String> {
        let config: BrokerConfig = toml::from_str(toml_text).unwrap();
        config.validate()?;
        config.listeners()
    }

    fn listener(name: &str, protocol: SecurityProtocol, address: &str, advertised: Option<&str>) -> Listener {
        Listener { name: name.into(), protocol, address: address.into(), advertised: advertised.map(Into::into) }
    }

    #[test]
    fn listeners_have_kafkas_syntax() {
        use SecurityProtocol::*;
        let one = |text: &str| listeners_of(&format!("listeners = \"{text}\"")).map(|mut l| l.remove(0));
        assert_eq!(listeners_of(""), Ok(vec![listener("PLAINTEXT", Plaintext, "127.0.0.1:9092", None)]));
        assert_eq!(
            one("SASL_PLAINTEXT://127.0.0.1:9093"),
            Ok(listener("SASL_PLAINTEXT", SaslPlaintext, "127.0.0.1:9093", None))
        );
        assert_eq!(one("PLAINTEXT://:9094"), Ok(listener("PLAINTEXT", Plaintext, "0.0.0.0:9094", None)));
        assert_eq!(one("sasl_plaintext://[::1]:9093").map(|l| l.name), Ok("SASL_PLAINTEXT".to_string()));
        for bad in ["127.0.0.1:9092", "TLS://h:1", "FOO://h:1", "PLAINTEXT://h", "PLAINTEXT://h:99999", "://h:1"] {
            assert!(one(bad).is_err(), "{bad}");
        }
        let bad_mechanism = BrokerConfig { sasl_enabled_mechanisms: vec!["GSSAPI".into()], ..Default::default() };
        assert!(bad_mechanism.validate().is_err());
    }

    #[test]
    fn several_listeners_with_names_protocols_and_advertised_addresses() {
        use SecurityProtocol::*;
        let two = listeners_of(
            "listeners = \"PLAINTEXT://127.0.0.1:9092, SASL_PLAINTEXT://0.0.0.0:9093\"\n\
             advertised_listeners = \"SASL_PLAINTEXT://broker.example:19093\"",
        );
        assert_eq!(
            two,
            Ok(vec![
                listener("PLAINTEXT", Plaintext, "127.0.0.1:9092", None),
                listener("SASL_PLAINTEXT", SaslPlaintext, "0.0.0.0:9093", Some("broker.example:19093")),
            ])
        );
        assert_eq!(two.unwrap()[1].advertised_host_port(), Ok(("broker.example".to_string(), 19093)));
        let named = listeners_of(
            "listeners = \"internal://127.0.0.2:9092,EXTERNAL://127.0.0.2:9093,SSL://:9094\"\n\
             listener_security_protocol_map = \"INTERNAL:PLAINTEXT, external:sasl_plaintext\"\n\
             ssl_certificate_location = \"c.pem\"\nssl_key_location = \"k.pem\"\n\
             inter_broker_listener_name = \"internal\"\ncontroller_quorum_voters = \"0@127.0.0.2:9095\"",
        )
        .unwrap();
        let protocols: Vec<(&str, SecurityProtocol)> = named.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(protocols, [("INTERNAL", Plaintext), ("EXTERNAL", SaslPlaintext), ("SSL", Ssl)]);
        // `advertise`, the one-listener form, is the first listener's.
        let advertise = "listeners = \"PLAINTEXT://:0,SSL://:0\"\nadvertise = \"h:1\"\n\
                         ssl_certificate_location = \"c.pem\"\nssl_key_location = \"k.pem\"";
        let advertised: Vec<Option<String>> =
            listeners_of(advertise).unwrap().into_iter().map(|l| l.advertised).collect();
        assert_eq!(advertised, [Some("h:1".to_string()), None]);
    }

    #[test]
    fn bad_listener_combinations_are_refused_with_what_is_wrong() {
        let refused = |text: &str, why: &str| {
            let error = listeners_of(text).expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
        };
        refused("listeners = \"PLAINTEXT://:9092,plaintext://:9093\"", "PLAINTEXT is given twice");
        refused("listeners = \"PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.2:9092\"", "both use port 9092");
        refused("listeners = \"INTERNAL://:9092\"", "INTERNAL is neither a security protocol nor in");
        refused(
            "listeners = \"A://:9092\"\nlistener_security_protocol_map = \"A:TLS\"",
            "'A:TLS' is not NAME:PROTOCOL",
        );
        refused(
            "listeners = \"A://:9092\"\nlistener_security_protocol_map = \"A:SSL,a:PLAINTEXT\"",
            "names no listener or one twice",
        );
        refused(
            "listeners = \"PLAINTEXT://:9092\"\nadvertised_listeners = \"SSL://h:9093\"",
            "advertised_listeners: SSL is not one of the listeners",
        );
        refused("advertised_listeners = \"PLAINTEXT://h:0\"", "advertises port 0");
        refused("advertised_listeners = \"PLAINTEXT://h:1,PLAINTEXT://h:2\"", "PLAINTEXT is given twice");
        refused("advertised_listeners = \"PLAINTEXT://h:1\"\nadvertise = \"h:1\"", "give one");
        refused("listeners = \"SASL_SSL://:9093\"", "listener SASL_SSL is SASL_SSL: it needs ssl_certificate_location");
        refused("listeners = \"SASL_PLAINTEXT://:9093\"\nsasl_enabled_mechanisms = []", "needs at least one");
        // In a cluster the inter-broker listener must exist and be PLAINTEXT
        // (a broker alone has no inter-broker traffic).
        let cluster = "controller_quorum_voters = \"1@127.0.0.1:9095\"\nnode_id = 1\n";
        refused(&format!("{cluster}listeners = \"SASL_PLAINTEXT://:9093\""), "PLAINTEXT is not one of the listeners");
        refused(
            &format!(
                "{cluster}listeners = \"SASL_PLAINTEXT://:9093\"\ninter_broker_listener_name = \"SASL_PLAINTEXT\""
            ),
            "brokers speak neither TLS nor SASL to each other yet",
        );
        assert!(listeners_of("listeners = \"SASL_PLAINTEXT://:9093\"").is_ok());
    }

    #[test]
    fn the_registration_names_every_listener_and_the_inter_broker_address() {
        let mut config: BrokerConfig = toml::from_str(
            "listeners = \"EXTERNAL://0.0.0.0:9093,INTERNAL://10.0.0.1:9092\"\n\
             listener_security_protocol_map = \"INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT\"\n\
             advertised_listeners = \"EXTERNAL://kafka.example:443\"\ninter_broker_listener_name = \"INTERNAL\"",
        )
        .unwrap();
        config.bound_listeners = config.listeners().unwrap();
        let registration = config.registration().unwrap();
        assert_eq!(registration.address(), "10.0.0.1:9092");
        assert_eq!(registration.endpoint("EXTERNAL"), Some(("kafka.example", 443)));
        assert_eq!(registration.endpoint("INTERNAL"), Some(("10.0.0.1", 9092)));
        assert_eq!(registration.endpoint("PLAINTEXT"), None);
        assert_eq!(registration.endpoints[0].protocol, SecurityProtocol::SaslPlaintext);
        // A broker alone without the inter-broker listener: its first one.
        config.inter_broker_listener_name = "PLAINTEXT".into();
        assert_eq!(config.registration().unwrap().address(), "kafka.example:443");
    }

    #[test]
    fn a_tls_listener_needs_its_files() {
        let mut cfg: BrokerConfig = toml::from_str("listeners = \"SSL://127.0.0.1:0\"").unwrap();
        assert!(cfg.validate().unwrap_err().contains("ssl_certificate_location"));
        cfg = toml::from_str(
            "listeners = \"SASL_SSL://127.0.0.1:0\"\nssl_certificate_location = \"c.pem\"\n\
             ssl_key_location = \"k.pem\"\nssl_client_auth = \"required\"",
        )
        .unwrap();
        assert_eq!(cfg.ssl_client_auth, SslClientAuth::Required);
        assert!(cfg.validate().unwrap_err().contains("ssl_ca_location"));
        cfg.ssl_ca_location = Some("ca.pem".into());
        assert!(cfg.validate().is_ok());
        assert_eq!("Requested".parse(), Ok(SslClientAuth::Requested));
        assert!("sometimes".parse::<SslClientAuth>().is_err());
    }

    #[test]
    fn internal_topics_take_kafkas_replication_factors() {
        let cfg: BrokerConfig = toml::from_str("offsets_topic_replication_factor = 1").unwrap();
        assert_eq!((cfg.offsets_topic_replication_factor, cfg.transaction_state_log_replication_factor), (1, 3));
        assert!(cfg.validate().is_ok());
        let none = BrokerConfig { transaction_state_log_replication_factor: 0, ..Default::default() };
        assert!(none.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<BrokerConfig>("lissten = \"x\"").is_err());
    }

    #[test]
    fn advertise_splits_host_and_port() {
        let advertised = |config: BrokerConfig| config.listeners().unwrap().remove(0).advertised_host_port();
        let cfg = BrokerConfig { advertise: Some("[::1]:9093".into()), ..Default::default() };
        assert_eq!(advertised(cfg), Ok(("::1".to_string(), 9093)));
        let bad = BrokerConfig { advertise: Some("localhost".into()), ..Default::default() };
        assert_eq!(bad.validate(), Err("advertise: address 'localhost' has no port".to_string()));
        let unset = BrokerConfig { listen: "0.0.0.0:9000".into(), ..Default::default() };
        assert_eq!(advertised(unset), Ok(("0.0.0.0".to_string(), 9000)));
    }
}
