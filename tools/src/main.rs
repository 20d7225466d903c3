//! `weir`: run a broker, manage topics, produce and consume from the shell.

mod acls;
mod bench;
mod cluster;
mod consume;
mod demo;
mod groups;
mod partitions;
mod produce;
mod quotas;
mod serve;
mod topics;
mod transactions;
mod users;

use clap::{Parser, Subcommand};

/// Keeps hostile array lengths in requests from aborting the broker (see the module).
#[global_allocator]
static ALLOCATOR: weir_net::huge_alloc::LazyHugeAlloc = weir_net::huge_alloc::LazyHugeAlloc;

#[derive(Parser)]
#[command(name = "weir", version, about = "A Kafka-compatible, thread-per-core commit-log broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (defaults: 127.0.0.1:9092, data in ./weir-data, one shard per core).
    Serve(serve::ServeArgs),
    /// The cluster's brokers, controller and unhealthy partitions.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Move partitions onto other brokers (reassignment) and list the moves.
    #[command(subcommand)]
    Partitions(partitions::PartitionsCommand),
    /// Produce lines from standard input, one message per line.
    Produce(produce::ProduceArgs),
    /// Print messages of a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// List and describe transactional ids and their transactions.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCommand),
    /// List, add and remove ACLs (as kafka-acls.sh).
    #[command(subcommand)]
    Acls(acls::AclsCommand),
    /// Describe and alter client quotas (as kafka-configs.sh for users and clients).
    #[command(subcommand)]
    Quotas(quotas::QuotasCommand),
    /// List, add and delete SASL/SCRAM users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Load generator: produce, consume, e2e and sweep against any Kafka-compatible broker.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Demo data: `weir demo clicks` produces the click stream of examples/clickstream.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // `weir consume | head` should end quietly, as shell tools do. (The broker
        // keeps Rust's default: a closed socket is an error to handle, not a signal.)
        // SAFETY: setting a signal disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Cluster(command) => cluster::run(command),
        Command::Topics(command) => topics::run(command),
        Command::Partitions(command) => partitions::run(command),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Groups(command) => groups::run(command),
        Command::Transactions(command) => transactions::run(command),
        Command::Users(command) => users::run(command),
        Command::Acls(command) => acls::run(command),
        Command::Quotas(command) => quotas::run(command),
        Command::Bench(command) => bench::run(command),
        Command::Demo(command) => demo::run(command),
    };
    if let Err(e) = result {
        eprintln!("weir: {e:#}");
        std::process::exit(1);
    }
}

/// The `--bootstrap` flag every client command takes.
#[derive(clap::Args, Clone)]
struct Bootstrap {
    /// host:port of a broker, or several separated by commas (the first
    /// that answers is asked).
    #[arg(long, short = 'b', visible_alias = "bootstrap-server", default_value = "127.0.0.1:9092")]
    bootstrap: String,
}
