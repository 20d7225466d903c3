//! `weir transactions list|describe`, over the Kafka protocol
//! (ListTransactions, DescribeTransactions).

use crate::groups::fail_on;
use crate::Bootstrap;
use anyhow::Context;
use kafka_protocol::messages::{DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum TransactionsCommand {
    /// List transactional ids with their producer id and state.
    List {
        /// Only ids in this state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort).
        #[arg(long)]
        state: Vec<String>,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// The state, producer, timeout and partitions of a transactional id.
    Describe {
        transactional_id: String,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
}

pub fn run(command: TransactionsCommand) -> anyhow::Result<()> {
    match command {
        TransactionsCommand::List { state, bootstrap } => list(&bootstrap.bootstrap, state),
        TransactionsCommand::Describe { transactional_id, bootstrap } => {
            describe(&bootstrap.bootstrap, &transactional_id)
        }
    }
}

fn list(bootstrap: &str, states: Vec<String>) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let request = ListTransactionsRequest::default()
        .with_state_filters(states.into_iter().map(StrBytes::from_string).collect())
        .with_duration_filter(-1);
    let response = client.send(&request, 1)?;
    fail_on(response.error_code, "listing transactions")?;
    for unknown in &response.unknown_state_filters {
        eprintln!("weir: unknown state '{}'", &**unknown);
    }
    let mut txns: Vec<_> = response.transaction_states.iter().collect();
    txns.sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
    println!("{:<40} {:>12} state", "transactional id", "producer id");
    for t in txns {
        println!("{:<40} {:>12} {}", &*t.transactional_id.0, t.producer_id.0, &*t.transaction_state);
    }
    Ok(())
}

fn describe(bootstrap: &str, transactional_id: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    let response = client.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![id]), 0)?;
    let t = response.transaction_states.first().context("the broker described no transaction")?;
    fail_on(t.error_code, &format!("describing transactional id '{transactional_id}'"))?;
    println!(
        "transactional id {transactional_id}  state {}  producer id {}  epoch {}  timeout {} ms",
        &*t.transaction_state, t.producer_id.0, t.producer_epoch, t.transaction_timeout_ms
    );
    if t.transaction_start_time_ms >= 0 {
        let running_ms = weir_engine::now_ms().saturating_sub(t.transaction_start_time_ms);
        println!("started {} ms ago", running_ms);
    }
    for topic in &t.topics {
        let partitions: Vec<String> = topic.partitions.iter().map(i32::to_string).collect();
        println!("  {}  partitions {}", &*topic.topic.0, partitions.join(","));
    }
    Ok(())
}
