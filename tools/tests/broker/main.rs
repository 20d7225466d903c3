//! The integration tests: each module runs the real `weir` broker (one per
//! test, on a port of its own) against real clients. One test binary, so
//! librdkafka is linked once, not once per file.

mod acls;
mod bench_cli;
mod cli;
mod cluster;
mod common;
mod consumer_groups;
mod consumer_protocol;
mod crash_harness;
mod crash_recovery;
mod create_topics;
mod full_disk;
mod idempotence;
mod kafka_apis;
mod limits;
mod listeners;
mod load;
mod metrics;
mod newest_versions;
mod producer_state;
mod protocol_errors;
mod rdkafka_roundtrip;
mod tls;
mod topic_configs;
mod transactions;
