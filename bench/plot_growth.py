#!/usr/bin/python3
"""Draws the tables of bench/growth.sh as one PNG (docs/benchmarks.md).

    /usr/bin/python3 bench/plot_growth.py OUT_DIR docs/growth.png

Left: calls/s and p99 latency against calls in flight, casework and the ceiling
(casework-echo). Right: the store's CPU per durable append (all of it, and the part in
RocksDB's flushes and compactions) against the log's size. Needs matplotlib
(Debian: apt-get install python3-matplotlib).
"""
import csv
import sys


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_growth.py OUT_DIR PNG")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_growth.py needs matplotlib: apt-get install python3-matplotlib")
    out_dir, png = sys.argv[1], sys.argv[2]
    conc = read(out_dir + "/concurrency.tsv")
    size = read(out_dir + "/size.tsv")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for server, colour in (("casework", "tab:blue"), ("ceiling", "tab:gray")):
        rows = [r for r in conc if r["server"] == server]
        n = [int(r["in_flight"]) for r in rows]
        left.plot(n, [float(r["calls_per_s"]) for r in rows], "o-", color=colour,
                  label=server + " calls/s")
    left.set_xscale("log", base=2)
    ticks = sorted({int(r["in_flight"]) for r in conc})
    left.set_xticks(ticks)
    left.set_xticklabels([str(t) for t in ticks])
    left.set_xlabel("calls in flight")
    left.set_ylabel("calls/s (durable commands for casework)")
    left.set_ylim(bottom=0)
    p99 = left.twinx()
    for server, colour in (("casework", "tab:blue"), ("ceiling", "tab:gray")):
        rows = [r for r in conc if r["server"] == server]
        p99.plot([int(r["in_flight"]) for r in rows], [int(r["p99_us"]) / 1000 for r in rows],
                 "x--", color=colour, label=server + " p99")
    p99.set_ylabel("p99 latency, ms (dashed)")
    p99.set_ylim(bottom=0)
    lines = left.get_legend_handles_labels()
    more = p99.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    left.set_title("server: throughput and p99 against concurrency", fontsize=10)

    events = [int(r["events"]) / 1e6 for r in size]
    right.plot(events, [float(r["cpu_us_per_append"]) for r in size], "o-", color="tab:blue",
               label="CPU per append, all")
    right.plot(events, [float(r["background_us_per_append"]) for r in size], "s--",
               color="tab:orange", label="of which flushes and compactions")
    right.set_xlabel("events in the log (millions)")
    right.set_ylabel("µs of CPU per durable append")
    # Headroom above the curves for the legend.
    right.set_ylim(0, 1.5 * max(float(r["cpu_us_per_append"]) for r in size))
    rate = right.twinx()
    rate.plot(events, [float(r["appends_per_s"]) / 1000 for r in size], "^:", color="tab:green",
              label="appends/s (thousands)")
    rate.set_ylabel("thousand appends/s (dotted)")
    rate.set_ylim(0, 1.5 * max(float(r["appends_per_s"]) / 1000 for r in size))
    lines = right.get_legend_handles_labels()
    more = rate.get_legend_handles_labels()
    right.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    right.set_title("store: cost per append against the log's size", fontsize=10)

    fig.tight_layout()
    fig.savefig(png)
    print("wrote", png)


if __name__ == "__main__":
    main()
