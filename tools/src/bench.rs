//! `weir bench produce|consume|e2e|sweep|crowd`: the load generator's command line.
//! The work is in the `weir-bench` crate; this prints and writes the results.

use anyhow::Context;
use std::path::Path;
use weir_bench::params::{Mode, Params};
use weir_bench::plot;
use weir_bench::sweep::{sweep, SweepArgs};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Produce as fast as possible or at --rate; report throughput and produce latency.
    Produce(Params),
    /// Read the topic from --from (earliest) to the end it had at the start; report throughput.
    Consume(Params),
    /// Produce and consume at once; report both throughputs and end-to-end latency.
    E2e(Params),
    /// Step the offered rate and find the highest throughput whose p99 stays under --p99-max-ms.
    Sweep(SweepArgs),
    /// An e2e run alone, then among a crowd of idle, garbage and slow-reader connections; report
    /// both throughputs, the connections held and (with --broker-pid) the broker's memory.
    Crowd(weir_bench::crowd::CrowdArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    let (mode, params) = match command {
        BenchCommand::Produce(p) => (Mode::Produce, p),
        BenchCommand::Consume(p) => (Mode::Consume, p),
        BenchCommand::E2e(p) => (Mode::E2e, p),
        BenchCommand::Sweep(args) => return run_sweep(args),
        BenchCommand::Crowd(args) => {
            print!("{}", weir_bench::crowd::run(&args)?.summary());
            return Ok(());
        }
    };
    let report = weir_bench::run::run(mode, &params, true)?;
    print!("{}", report.summary());
    if let Some(path) = &params.json {
        report.write_json(path)?;
    }
    if let Some(path) = &params.plot {
        write_svg(path, &plot::svg(&plot::run_charts(&report)))?;
    }
    Ok(())
}

fn run_sweep(args: SweepArgs) -> anyhow::Result<()> {
    let report = sweep(&args, |step, _| {
        eprintln!(
            "offered {:>10.0} msg/s: achieved {:>10.0} msg/s {:>8.2} MB/s, p99 {} ms",
            step.offered_messages_per_s,
            step.achieved_messages_per_s,
            step.achieved_mb_per_s,
            step.p99_ms.map_or("-".into(), weir_bench::stats::ms)
        );
    })?;
    print!("{}", report.table());
    if let Some(path) = &args.params.json {
        weir_bench::report::write_json(path, &report)?;
    }
    if let Some(path) = &args.params.plot {
        write_svg(path, &plot::svg(&report.charts()))?;
    }
    Ok(())
}

fn write_svg(path: &Path, svg: &str) -> anyhow::Result<()> {
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}
