//! Weir's Kafka-protocol load generator (`weir bench`): it speaks the wire
//! protocol itself, so it measures Weir and any other Kafka-compatible broker
//! the same way.
//!
//! - [`params`]: every knob, as flags and as JSON, and the checks on them.
//! - [`run`]: one measured run of produce, consume or e2e.
//! - [`workers`]: producer lanes (pipelined requests) and consumer lanes (long polls).
//! - [`batch`]: produce frames built once and patched per send; the fetched-batch scan.
//! - [`pace`]: rate pacing and the intended send times latency is measured from.
//! - [`stats`]: hdrhistogram latencies and their percentiles.
//! - [`report`], [`plot`]: the JSON report, the summary, the SVG charts.
//! - [`sweep`]: capacity planning over offered rates.
//! - [`crowd`]: idle, garbage and slow-reader connections for load runs.
//! - [`fake`]: the instant-answer broker behind `--dry-run`.
//! - [`admin`], [`wire`]: topic set-up and the connection with timeouts.

pub mod admin;
pub mod batch;
pub mod crowd;
pub mod fake;
pub mod pace;
pub mod params;
pub mod plot;
pub mod report;
pub mod run;
pub mod stats;
pub mod sweep;
pub mod wire;
pub mod workers;
