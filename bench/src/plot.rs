//! Line charts as plain SVG, written by hand: a latency-percentile chart, a
//! throughput-over-time chart and the sweep's charts.

use crate::report::Report;
use std::fmt::Write as _;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A horizontal or vertical marker line with a label.
pub enum Marker {
    X(f64, String),
    Y(f64, String),
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed x ticks (value, label); automatic when empty.
    pub x_ticks: Vec<(f64, String)>,
    pub markers: Vec<Marker>,
}

/// The charts stacked in one SVG document.
pub fn svg(charts: &[Chart]) -> String {
    let total = HEIGHT * charts.len().max(1) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{total}\" viewBox=\"0 0 {WIDTH} {total}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, chart) in charts.iter().enumerate() {
        draw(&mut out, chart, i as f64 * HEIGHT);
    }
    out.push_str("</svg>\n");
    out
}

/// "Nice" tick values covering `lo..=hi`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| raw <= *s).unwrap_or(10.0 * magnitude);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(v);
        v += step;
    }
    out
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v.abs() >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn draw(out: &mut String, chart: &Chart, y0: f64) {
    let points = chart.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x_lo, mut x_hi, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in points {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_hi = y_hi.max(y);
    }
    for m in &chart.markers {
        match m {
            Marker::X(x, _) => {
                x_lo = x_lo.min(*x);
                x_hi = x_hi.max(*x);
            }
            Marker::Y(y, _) => y_hi = y_hi.max(*y),
        }
    }
    for (x, _) in &chart.x_ticks {
        x_lo = x_lo.min(*x);
        x_hi = x_hi.max(*x);
    }
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    let y_ticks = ticks(0.0, if y_hi > 0.0 { y_hi * 1.05 } else { 1.0 });
    let y_top = y_ticks.last().copied().unwrap_or(1.0).max(y_hi).max(1e-9);
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * pw;
    let py = |y: f64| y0 + TOP + ph - (y / y_top) * ph;
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        WIDTH / 2.0,
        y0 + 22.0,
        escape(&chart.title)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>",
        y0 + TOP
    );
    for t in &y_ticks {
        let y = py(*t);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            label(*t)
        );
    }
    let x_ticks: Vec<(f64, String)> = if chart.x_ticks.is_empty() {
        ticks(x_lo, x_hi).into_iter().map(|t| (t, label(t))).collect()
    } else {
        chart.x_ticks.clone()
    };
    for (t, text) in &x_ticks {
        let x = px(*t);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y0 + TOP,
            y0 + TOP + ph,
            y0 + TOP + ph + 16.0,
            escape(text)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        LEFT + pw / 2.0,
        y0 + HEIGHT - 18.0,
        escape(&chart.x_label)
    );
    let _ = writeln!(
        out,
        "<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        y0 + TOP + ph / 2.0,
        escape(&chart.y_label)
    );
    for m in &chart.markers {
        let (x1, x2, y1, y2, text) = match m {
            Marker::X(x, t) => (px(*x), px(*x), y0 + TOP, y0 + TOP + ph, t),
            Marker::Y(y, t) => (LEFT, LEFT + pw, py(*y), py(*y), t),
        };
        let _ = writeln!(
            out,
            "<line x1=\"{x1:.1}\" x2=\"{x2:.1}\" y1=\"{y1:.1}\" y2=\"{y2:.1}\" stroke=\"#888\" stroke-dasharray=\"5,4\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">{}</text>",
            x1 + 4.0,
            y1 + 14.0,
            escape(text)
        );
    }
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if path.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        if path.len() < 30 {
            for p in &path {
                let (x, y) = p.split_once(',').expect("x,y");
                let _ = writeln!(out, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>");
            }
        }
        let ly = y0 + TOP + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.1}\">{}</text>",
            LEFT + 12.0,
            ly - 4.0,
            LEFT + 30.0,
            ly,
            escape(&s.name)
        );
    }
}

/// Percentile as "nines" (x axis of a latency chart): 90% -> 1, 99% -> 2, ...
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-6).log10()
}

/// The latency-percentile chart and the throughput-over-time chart of a run.
pub fn run_charts(report: &Report) -> Vec<Chart> {
    let curve = |name: &str, c: &[(f64, f64)]| Series {
        name: name.to_string(),
        points: c.iter().filter(|(q, _)| *q < 100.0).map(|&(q, ms)| (nines(q), ms)).collect(),
    };
    let mut latency = Vec::new();
    if !report.produce_latency_curve.is_empty() {
        latency.push(curve("produce (to ack)", &report.produce_latency_curve));
    }
    if !report.e2e_latency_curve.is_empty() {
        latency.push(curve("end to end", &report.e2e_latency_curve));
    }
    let x_ticks = [(0.0, "p0"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9"), (4.0, "p99.99"), (5.0, "p99.999")]
        .iter()
        .map(|(x, s)| (*x, s.to_string()))
        .collect();
    let mode = crate::report::name(&report.mode);
    let mut charts = Vec::new();
    if !latency.is_empty() {
        charts.push(Chart {
            title: format!("weir bench {mode}: latency by percentile"),
            x_label: "percentile".into(),
            y_label: "latency (ms)".into(),
            series: latency,
            x_ticks,
            markers: Vec::new(),
        });
    }
    let mut series = Vec::new();
    if report.produce.is_some() {
        series.push(Series {
            name: "produced".into(),
            points: report.timeline.iter().map(|s| (s.t_s, s.produce_mb_per_s)).collect(),
        });
    }
    if report.consume.is_some() {
        series.push(Series {
            name: "consumed".into(),
            points: report.timeline.iter().map(|s| (s.t_s, s.consume_mb_per_s)).collect(),
        });
    }
    charts.push(Chart {
        title: format!("weir bench {mode}: throughput over time"),
        x_label: "seconds since start".into(),
        y_label: "MB/s (payload)".into(),
        series,
        x_ticks: Vec::new(),
        markers: vec![Marker::X(report.params.warmup, "end of warm-up".into())],
    });
    charts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 0.9), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8]);
        assert_eq!(ticks(3.0, 3.0), vec![3.0]);
    }

    #[test]
    fn run_charts_are_well_formed_svg() {
        let report = crate::report::tests::sample_report();
        let doc = svg(&run_charts(&report));
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches("<polyline").count(), 4, "two latency curves and two throughput lines");
        assert!(doc.contains("p99.99") && doc.contains("throughput over time"));
        assert!(!doc.contains("NaN") && !doc.contains("inf"));
    }

    #[test]
    fn text_is_escaped() {
        let chart = Chart {
            title: "a<b & c".into(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![],
            x_ticks: vec![],
            markers: vec![],
        };
        assert!(svg(&[chart]).contains("a&lt;b &amp; c"));
    }
}
