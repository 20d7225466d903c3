//! `weir serve`: flags and an optional TOML file over the embedded defaults.

use std::io::IsTerminal;
use std::path::PathBuf;
use weir_shards::BrokerConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML file with broker settings (keys as in BrokerConfig: listen, advertise, data_dir, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<String>,
    /// host:port clients are told to connect to [default: the listen address].
    #[arg(long)]
    advertise: Option<String>,
    /// Directory for logs and metadata [default: ./weir-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (pinned executors) [default: one per core].
    #[arg(long)]
    shards: Option<usize>,
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
    /// Log filter, e.g. info or weir_net=debug [default: info, or $RUST_LOG].
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
    let filter = args.log.clone().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.with_ansi(false).json().init(),
    }
    let config = config(args).map_err(anyhow::Error::msg)?;
    check_listen_address(&config.listen)?;
    tracing::info!(
        listen = %config.listen,
        advertise = %config.advertised(),
        data_dir = %config.data_dir.display(),
        shards = config.shard_count(),
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
    if let Some(advertise) = args.advertise {
        config.advertise = Some(advertise);
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(shards) = args.shards {
        config.shards = shards;
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

/// Every shard binds with SO_REUSEPORT, which would let a second broker of the
/// same user share the port silently; connection attempts first turn that into
/// a clear error. A broker killed a moment ago can leave listening sockets
/// behind for up to a few seconds (its io_uring is torn down asynchronously),
/// so the port only counts as taken if it keeps accepting for `PROBE_FOR`.
fn check_listen_address(listen: &str) -> anyhow::Result<()> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::{Duration, Instant};
    const PROBE_FOR: Duration = Duration::from_secs(5);
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("bad listen address '{listen}': {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("listen address '{listen}' resolves to nothing"))?;
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    };
    let start = Instant::now();
    while TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_ok() {
        if start.elapsed() > PROBE_FOR {
            anyhow::bail!("cannot listen on {listen}: another process is already listening there");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
