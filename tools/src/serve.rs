//! `weir serve`: flags and an optional TOML file over the embedded defaults.

use std::io::IsTerminal;
use std::path::PathBuf;
use weir_shards::BrokerConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML file with broker settings (keys as in BrokerConfig: listen, advertise, data_dir, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This broker's id (Kafka's node.id) [default: 0].
    #[arg(long)]
    node_id: Option<i32>,
    /// The rack or zone of this broker (broker.rack): a partition's replicas go on as many racks as they can.
    #[arg(long)]
    broker_rack: Option<String>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<String>,
    /// The voters of the metadata quorum, id@host:port,... with this broker among them
    /// (controller.quorum.voters) [default: none, the broker is its own controller].
    #[arg(long)]
    controller_quorum_voters: Option<String>,
    /// Where this voter listens for the other voters [default: its address in --controller-quorum-voters].
    #[arg(long)]
    controller_listen: Option<String>,
    /// A follower not caught up with its leader for this long leaves the ISR (replica.lag.time.max.ms)
    /// [default: 30000].
    #[arg(long)]
    replica_lag_time_max_ms: Option<u64>,
    /// Move leadership back to the preferred replicas on its own (auto.leader.rebalance.enable)
    /// [default: true].
    #[arg(long)]
    auto_leader_rebalance_enable: Option<bool>,
    /// How often the active controller looks for imbalanced leadership
    /// (leader.imbalance.check.interval.seconds) [default: 300].
    #[arg(long)]
    leader_imbalance_check_interval_seconds: Option<u64>,
    /// A broker's partitions move back once more than this percentage of those it is the preferred
    /// replica of are led elsewhere (leader.imbalance.per.broker.percentage) [default: 10].
    #[arg(long)]
    leader_imbalance_per_broker_percentage: Option<u32>,
    /// The listeners in Kafka's syntax, NAME://host:port,..., e.g.
    /// PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093; a name is a security protocol (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL) or mapped to one by --listener-security-protocol-map (replaces --listen)
    /// [default: PLAINTEXT on the listen address].
    #[arg(long)]
    listeners: Option<String>,
    /// Each named listener's security protocol, NAME:PROTOCOL,..., e.g. INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL
    /// (listener.security.protocol.map) [default: the protocols' own names].
    #[arg(long)]
    listener_security_protocol_map: Option<String>,
    /// Where each listener's clients are told brokers are, NAME://host:port,... (advertised.listeners)
    /// [default: each listener's own address].
    #[arg(long)]
    advertised_listeners: Option<String>,
    /// The listener other brokers of a cluster connect to; PLAINTEXT only, for now
    /// (inter.broker.listener.name) [default: PLAINTEXT].
    #[arg(long)]
    inter_broker_listener_name: Option<String>,
    /// A TLS listener's certificate chain, PEM (ssl.certificate.location); reread when it changes.
    #[arg(long)]
    ssl_certificate_location: Option<PathBuf>,
    /// The private key of the certificate, PEM (ssl.key.location).
    #[arg(long)]
    ssl_key_location: Option<PathBuf>,
    /// CA certificates, PEM, that client certificates must chain to (ssl.ca.location).
    #[arg(long)]
    ssl_ca_location: Option<PathBuf>,
    /// Client certificates: none, requested or required (ssl.client.auth) [default: none].
    #[arg(long)]
    ssl_client_auth: Option<weir_shards::SslClientAuth>,
    /// A SASL connection must re-authenticate within this many ms or be closed
    /// (connections.max.reauth.ms) [default: 0, never].
    #[arg(long)]
    connections_max_reauth_ms: Option<u64>,
    /// Check every request against the ACLs (Kafka's authorizer.class.name) [default: false].
    #[arg(long)]
    acl_enabled: Option<bool>,
    /// Principals the ACLs never refuse, ;-separated, e.g. "User:admin;User:ANONYMOUS" (super.users).
    #[arg(long)]
    super_users: Option<String>,
    /// With ACLs on, a resource no ACL names is open to everyone (allow.everyone.if.no.acl.found)
    /// [default: false].
    #[arg(long)]
    allow_everyone_if_no_acl_found: Option<bool>,
    /// host:port the first listener's clients are told to connect to (the one-listener form of
    /// --advertised-listeners) [default: the listener's address].
    #[arg(long)]
    advertise: Option<String>,
    /// Directory for logs and metadata [default: ./weir-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (pinned executors) [default: one per core].
    #[arg(long)]
    shards: Option<usize>,
    /// Cores to pin the shards to, as a CPU list such as 0-3,8 [default: every online core].
    /// Brokers sharing a machine each take their own.
    #[arg(long)]
    cpuset: Option<String>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long)]
    default_partitions: Option<i32>,
    /// Create unknown topics on first use [default: true].
    #[arg(long)]
    auto_create_topics: Option<bool>,
    /// host:port of the admin HTTP endpoint (/health, /metrics); "" turns it off
    /// [default: 127.0.0.1:9644].
    #[arg(long)]
    admin_listen: Option<String>,
    /// Log filter, e.g. info or weir_net=debug [default: info,openraft=error, or $RUST_LOG].
    #[arg(long)]
    log: Option<String>,
    /// Log lines as human-readable text or as one JSON object each (for log collectors).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // openraft warns of an unreachable voter at every heartbeat (10 a
    // second); Weir logs who the active controller is instead.
    let filter =
        args.log.clone().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info,openraft=error".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.with_ansi(false).json().init(),
    }
    let config = config(args).map_err(anyhow::Error::msg)?;
    weir_net::tls::check_config(&config).map_err(anyhow::Error::msg)?;
    tracing::info!(
        listeners = ?config.listeners().unwrap_or_default(),
        data_dir = %config.data_dir.display(),
        shards = config.shard_count(),
        cpuset = %config.cpuset,
        admin = %config.admin_listen,
        "weir {} starting",
        env!("CARGO_PKG_VERSION")
    );
    weir_shards::run(config, weir_net::serve_shard)?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn config(args: ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_toml_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    if let Some(rack) = args.broker_rack {
        config.broker_rack = Some(rack);
    }
    if let Some(voters) = args.controller_quorum_voters {
        config.controller_quorum_voters = voters;
    }
    if let Some(listen) = args.controller_listen {
        config.controller_listen = listen;
    }
    if let Some(lag) = args.replica_lag_time_max_ms {
        config.replica_lag_time_max_ms = lag;
    }
    if let Some(enable) = args.auto_leader_rebalance_enable {
        config.auto_leader_rebalance_enable = enable;
    }
    if let Some(interval) = args.leader_imbalance_check_interval_seconds {
        config.leader_imbalance_check_interval_seconds = interval;
    }
    if let Some(percentage) = args.leader_imbalance_per_broker_percentage {
        config.leader_imbalance_per_broker_percentage = percentage;
    }
    if let Some(listeners) = args.listeners {
        config.listeners = listeners;
    }
    if let Some(map) = args.listener_security_protocol_map {
        config.listener_security_protocol_map = map;
    }
    if let Some(advertised) = args.advertised_listeners {
        config.advertised_listeners = advertised;
    }
    if let Some(name) = args.inter_broker_listener_name {
        config.inter_broker_listener_name = name;
    }
    if let Some(path) = args.ssl_certificate_location {
        config.ssl_certificate_location = Some(path);
    }
    if let Some(path) = args.ssl_key_location {
        config.ssl_key_location = Some(path);
    }
    if let Some(path) = args.ssl_ca_location {
        config.ssl_ca_location = Some(path);
    }
    if let Some(auth) = args.ssl_client_auth {
        config.ssl_client_auth = auth;
    }
    if let Some(reauth) = args.connections_max_reauth_ms {
        config.connections_max_reauth_ms = reauth;
    }
    if let Some(enabled) = args.acl_enabled {
        config.acl_enabled = enabled;
    }
    if let Some(users) = args.super_users {
        config.super_users = users;
    }
    if let Some(allow) = args.allow_everyone_if_no_acl_found {
        config.allow_everyone_if_no_acl_found = allow;
    }
    if let Some(advertise) = args.advertise {
        config.advertise = Some(advertise);
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(shards) = args.shards {
        config.shards = shards;
    }
    if let Some(cpuset) = args.cpuset {
        config.cpuset = cpuset;
    }
    if let Some(partitions) = args.default_partitions {
        if partitions < 1 {
            return Err(format!("--default-partitions must be at least 1, not {partitions}"));
        }
        config.default_partitions = partitions;
    }
    if let Some(auto_create) = args.auto_create_topics {
        config.auto_create_topics = auto_create;
    }
    if let Some(admin) = args.admin_listen {
        config.admin_listen = admin;
    }
    config.validate()?;
    Ok(config)
}
