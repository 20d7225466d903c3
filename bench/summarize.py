#!/usr/bin/env python3
"""Turns the JSON files of bench/compare.sh into the Markdown table of BENCHMARKS.md."""
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


fio = load("fio.json")
fio_sync = load("fio-sync.json")
iperf = load("iperf3.json")
fio_mb = fio["jobs"][0]["write"]["bw_bytes"] / 1e6 if fio else None
fio_sync_mb = fio_sync["jobs"][0]["write"]["bw_bytes"] / 1e6 if fio_sync else None
iperf_mb = iperf["end"]["sum_received"]["bits_per_second"] / 8 / 1e6 if iperf else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


rows = []
for key, what, ref_name, ref in [
    ("produce-acks1", "produce 1 KiB, acks=1", "fio O_DIRECT write", fio_mb),
    ("produce-acksall", "produce 1 KiB, acks=all", "fio O_DIRECT write", fio_mb),
    ("consume", "consume 1 KiB", "iperf3 loopback", iperf_mb),
    ("e2e", "e2e 1 KiB at a fixed rate", None, None),
]:
    w, t = load(f"weir-{key}.json"), load(f"tansu-{key}.json")
    side = "consume" if key == "consume" else "produce"
    mb = lambda r: r[side]["mb_per_s"] if r and r.get(side) else None
    msgs = lambda r: r[side]["messages_per_s"] if r and r.get(side) else None
    lat_key = "e2e_latency" if key == "e2e" else "produce_latency"
    p99 = lambda r: r[lat_key]["p99_ms"] if r and r.get(lat_key) else None
    rows.append((what, msgs(w), mb(w), p99(w), msgs(t), mb(t), p99(t), ref_name, ref))

print("| workload | Weir msg/s | Weir MB/s | Weir p99 ms | Tansu msg/s | Tansu MB/s | Tansu p99 ms | Weir / Tansu | reference (same run) | Weir / reference |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for what, wm, wb, wp, tm, tb, tp, ref_name, ref in rows:
    ref_text = f"{ref_name}: {fmt(ref)} MB/s" if ref_name else "-"
    print(f"| {what} | {fmt(wm, 0)} | {fmt(wb)} | {fmt(wp, 2)} | {fmt(tm, 0)} | {fmt(tb)} | {fmt(tp, 2)} | {ratio(wb, tb)} | {ref_text} | {ratio(wb, ref)} |")
if fio_sync_mb is not None:
    print(f"\nfio with an fdatasync after every 1 MiB write: {fmt(fio_sync_mb)} MB/s (the floor for acks=all without group commit).")
dry = load("dry-run.json")
if dry:
    print(f"Generator ceiling (--dry-run, instant fake broker in the same process): {fmt(dry['produce']['messages_per_s'], 0)} msg/s, "
          f"{fmt(dry['produce']['mb_per_s'])} MB/s, {dry['generator']['cpu_seconds_per_gb']:.2f} CPU s per GB.")
MB = "MB = 10^6 bytes of message values; p99 is produce latency (e2e latency for the e2e row), in ms."
print(f"\n{MB}")
