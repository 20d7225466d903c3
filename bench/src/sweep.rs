//! `weir bench sweep`: capacity planning. Steps the offered rate (for each
//! message size and partition count asked for) and finds the highest
//! throughput whose p99 latency stays under a bound.

use crate::params::{Mode, Params};
use crate::plot::{Chart, Marker, Series};
use crate::report::Report;
use crate::run::run;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// The bound applies to produce latency (to the acknowledgement).
    Produce,
    /// The bound applies to end-to-end latency (produce to consume).
    E2e,
}

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct SweepArgs {
    /// Offered rates to step through, in messages per second (each step runs --duration after --warmup).
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,20000,50000,100000,200000")]
    pub rates: Vec<f64>,
    /// The latency bound: a step passes when its p99 is at most this.
    #[arg(long, default_value_t = 10.0)]
    pub p99_max_ms: f64,
    /// Which latency the bound applies to.
    #[arg(long, value_enum, default_value = "produce")]
    pub sweep_mode: SweepMode,
    /// Also step the message size (bytes), e.g. 100,1024,10240 [default: --message-size].
    #[arg(long, value_delimiter = ',')]
    pub message_sizes: Vec<usize>,
    /// Also step the partition count, e.g. 1,4,16 (topic <topic>-p<N> each) [default: --partitions].
    #[arg(long, value_delimiter = ',')]
    pub partition_counts: Vec<i32>,
    /// Keep stepping after a step fails the bound or falls short of its offered rate.
    #[arg(long)]
    pub all_steps: bool,
    #[command(flatten)]
    pub params: Params,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub message_size: usize,
    pub partitions: i32,
    pub offered_messages_per_s: f64,
    pub achieved_messages_per_s: f64,
    pub achieved_mb_per_s: f64,
    pub p99_ms: Option<f64>,
    /// p99 within the bound.
    pub within_bound: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Best {
    pub message_size: usize,
    pub partitions: i32,
    /// Highest achieved throughput among the steps within the bound.
    pub messages_per_s: f64,
    pub mb_per_s: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub args: SweepArgs,
    pub steps: Vec<Step>,
    /// One per (message size, partitions) combination that had a passing step.
    pub best: Vec<Best>,
}

impl SweepArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.rates.is_empty() || self.rates.len() > 100 {
            return Err("--rates needs 1 to 100 rates".into());
        }
        if let Some(r) = self.rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(format!("--rates must all be positive, not {r}"));
        }
        if !(self.p99_max_ms.is_finite() && self.p99_max_ms > 0.0) {
            return Err("--p99-max-ms must be positive".into());
        }
        if self.params.rate.is_some() {
            return Err("sweep sets the rate itself: give --rates, not --rate".into());
        }
        if self.params.messages.is_some() {
            return Err("sweep runs each step for --duration; --messages does not apply".into());
        }
        if self.params.json.is_some() && self.params.dry_run {
            return Err("--dry-run does not apply to sweep".into());
        }
        Ok(())
    }
}

/// Runs every step; `on_step` sees each finished step (for printing as it goes).
pub fn sweep(args: &SweepArgs, mut on_step: impl FnMut(&Step, &Report)) -> anyhow::Result<SweepReport> {
    args.validate().map_err(anyhow::Error::msg)?;
    let mode = match args.sweep_mode {
        SweepMode::Produce => Mode::Produce,
        SweepMode::E2e => Mode::E2e,
    };
    let sizes = if args.message_sizes.is_empty() { vec![args.params.message_size] } else { args.message_sizes.clone() };
    let counts =
        if args.partition_counts.is_empty() { vec![args.params.partitions] } else { args.partition_counts.clone() };
    let mut rates = args.rates.clone();
    rates.sort_by(f64::total_cmp);
    let mut steps = Vec::new();
    for &partitions in &counts {
        for &size in &sizes {
            for &rate in &rates {
                let mut p = args.params.clone();
                p.message_size = size;
                p.partitions = partitions;
                if !args.partition_counts.is_empty() {
                    p.topic = format!("{}-p{partitions}", args.params.topic);
                }
                p.rate = Some(rate);
                p.json = None;
                p.plot = None;
                let report = run(mode, &p, false)?;
                let throughput = report.produce.expect("sweep modes produce");
                let latency = match mode {
                    Mode::E2e => report.e2e_latency,
                    _ => report.produce_latency,
                };
                let p99 = latency.map(|l| l.p99_ms);
                let step = Step {
                    message_size: size,
                    partitions,
                    offered_messages_per_s: rate,
                    achieved_messages_per_s: throughput.messages_per_s,
                    achieved_mb_per_s: throughput.mb_per_s,
                    p99_ms: p99,
                    within_bound: p99.is_some_and(|v| v <= args.p99_max_ms),
                };
                on_step(&step, &report);
                let keep_going = step.within_bound && step.achieved_messages_per_s >= 0.9 * rate;
                steps.push(step);
                if !keep_going && !args.all_steps {
                    break;
                }
            }
        }
    }
    let best = best_steps(&steps);
    Ok(SweepReport { args: args.clone(), steps, best })
}

/// The best passing step of each (size, partitions) combination.
pub fn best_steps(steps: &[Step]) -> Vec<Best> {
    let mut best: Vec<Best> = Vec::new();
    for s in steps.iter().filter(|s| s.within_bound) {
        let candidate = Best {
            message_size: s.message_size,
            partitions: s.partitions,
            messages_per_s: s.achieved_messages_per_s,
            mb_per_s: s.achieved_mb_per_s,
            p99_ms: s.p99_ms.unwrap_or(0.0),
        };
        match best.iter_mut().find(|b| b.message_size == s.message_size && b.partitions == s.partitions) {
            Some(b) if b.messages_per_s < candidate.messages_per_s => *b = candidate,
            Some(_) => {}
            None => best.push(candidate),
        }
    }
    best
}

impl SweepReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>10} {:>10} {:>14} {:>14} {:>10} {:>10}  p99 <= {} ms",
            "size", "partitions", "offered msg/s", "achieved msg/s", "MB/s", "p99 ms", self.args.p99_max_ms
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:>14.0} {:>14.0} {:>10.2} {:>10} {}",
                s.message_size,
                s.partitions,
                s.offered_messages_per_s,
                s.achieved_messages_per_s,
                s.achieved_mb_per_s,
                s.p99_ms.map_or("-".into(), crate::stats::ms),
                if s.within_bound { "ok" } else { "over" }
            );
        }
        if self.best.is_empty() {
            let _ = writeln!(out, "no step kept p99 within {} ms", self.args.p99_max_ms);
        }
        for b in &self.best {
            let _ = writeln!(
                out,
                "best with p99 <= {} ms: {:.0} msg/s, {:.2} MB/s ({}-byte messages, {} partitions, p99 {} ms)",
                self.args.p99_max_ms,
                b.messages_per_s,
                b.mb_per_s,
                b.message_size,
                b.partitions,
                crate::stats::ms(b.p99_ms)
            );
        }
        out
    }

    /// Achieved vs offered rate, and p99 vs offered rate, one line per combination.
    pub fn charts(&self) -> Vec<Chart> {
        let mut combos: Vec<(usize, i32)> = Vec::new();
        for s in &self.steps {
            if !combos.contains(&(s.message_size, s.partitions)) {
                combos.push((s.message_size, s.partitions));
            }
        }
        let series = |f: &dyn Fn(&Step) -> Option<f64>| -> Vec<Series> {
            combos
                .iter()
                .map(|&(size, parts)| Series {
                    name: format!("{size} B, {parts} partitions"),
                    points: self
                        .steps
                        .iter()
                        .filter(|s| s.message_size == size && s.partitions == parts)
                        .filter_map(|s| f(s).map(|y| (s.offered_messages_per_s, y)))
                        .collect(),
                })
                .collect()
        };
        let mut achieved = series(&|s| Some(s.achieved_messages_per_s));
        let max_offered = self.steps.iter().map(|s| s.offered_messages_per_s).fold(0.0, f64::max);
        achieved.push(Series { name: "offered".into(), points: vec![(0.0, 0.0), (max_offered, max_offered)] });
        vec![
            Chart {
                title: "weir bench sweep: achieved vs offered rate".into(),
                x_label: "offered (msg/s)".into(),
                y_label: "achieved (msg/s)".into(),
                series: achieved,
                x_ticks: Vec::new(),
                markers: Vec::new(),
            },
            Chart {
                title: "weir bench sweep: p99 latency vs offered rate".into(),
                x_label: "offered (msg/s)".into(),
                y_label: "p99 (ms)".into(),
                series: series(&|s| s.p99_ms),
                x_ticks: Vec::new(),
                markers: vec![Marker::Y(self.args.p99_max_ms, format!("bound {} ms", self.args.p99_max_ms))],
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(size: usize, rate: f64, achieved: f64, p99: f64, bound: f64) -> Step {
        Step {
            message_size: size,
            partitions: 1,
            offered_messages_per_s: rate,
            achieved_messages_per_s: achieved,
            achieved_mb_per_s: achieved * size as f64 / 1e6,
            p99_ms: Some(p99),
            within_bound: p99 <= bound,
        }
    }

    #[test]
    fn best_is_the_highest_throughput_within_the_bound() {
        let steps = vec![
            step(100, 1000.0, 1000.0, 1.0, 5.0),
            step(100, 2000.0, 2000.0, 4.0, 5.0),
            step(100, 4000.0, 3900.0, 9.0, 5.0),
            step(1000, 1000.0, 1000.0, 6.0, 5.0),
        ];
        let best = best_steps(&steps);
        assert_eq!(best.len(), 1);
        assert_eq!((best[0].message_size, best[0].messages_per_s, best[0].p99_ms), (100, 2000.0, 4.0));
    }

    #[test]
    fn sweep_arguments_are_checked() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: SweepArgs,
        }
        let parse = |a: &[&str]| Cli::try_parse_from(std::iter::once("x").chain(a.iter().copied())).unwrap().args;
        parse(&[]).validate().unwrap();
        assert!(parse(&["--rates", "100,0"]).validate().unwrap_err().contains("--rates"));
        assert!(parse(&["--rate", "5"]).validate().unwrap_err().contains("--rates"));
        assert!(parse(&["--p99-max-ms", "0"]).validate().unwrap_err().contains("--p99-max-ms"));
        assert_eq!(parse(&["--rates", "1,2,3"]).rates, vec![1.0, 2.0, 3.0]);
    }
}
