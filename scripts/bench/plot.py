#!/usr/bin/python3
"""Draw bench-results/e2e.png from bench-results/e2e.json (written by scripts/bench-e2e.ts).

usage: /usr/bin/python3 scripts/bench/plot.py [E2E_JSON [OUT_PNG]]

One panel per metric present (packets/s, connections/s, latency p50/p99): bars are medians,
whiskers min..max, grouped by scenario; each bar is labelled with its median and, for
packets/s and connections/s, its ratio to nftables DNAT. Needs matplotlib (Debian python3-matplotlib; run with
/usr/bin/python3).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYSTEM_ORDER = ["xlb-dr", "xlb-tun", "xlb-nat", "xlb-fullnat", "nftables-dnat", "haproxy", "direct", "xdp-redirect-floor"]
COLORS = {
    "xlb-dr": "#1f77b4", "xlb-tun": "#4c9be0", "xlb-nat": "#7fb8ec", "xlb-fullnat": "#a9d0f5",
    "nftables-dnat": "#d62728", "haproxy": "#ff7f0e", "direct": "#2ca02c", "xdp-redirect-floor": "#7f7f7f",
}
PANELS = [
    ("pps", "packets/s forwarded (Mpps)", 1e-6),
    ("conn_per_s", "TCP connections/s", 1.0),
    ("p50_ms", "latency p50 (ms)", 1.0),
    ("p99_ms", "latency p99 (ms)", 1.0),
]


def load(path):
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    if not isinstance(rows, list):
        raise SystemExit(f"{path}: expected a list of rows")
    for i, r in enumerate(rows):
        for k in ("scenario", "system", "metric", "median", "min", "max"):
            if k not in r:
                raise SystemExit(f"{path}: row {i} has no '{k}'")
    return rows


def panel(ax, rows, metric, title, scale):
    mine = [r for r in rows if r["metric"] == metric]
    scenarios = list(dict.fromkeys(r["scenario"] for r in mine))
    systems = [s for s in SYSTEM_ORDER if any(r["system"] == s for r in mine)]
    systems += sorted({r["system"] for r in mine} - set(systems))
    width = 0.8 / max(1, len(systems))
    for j, system in enumerate(systems):
        xs, ys, lo, hi, labels = [], [], [], [], []
        for i, sc in enumerate(scenarios):
            r = next((r for r in mine if r["scenario"] == sc and r["system"] == system), None)
            if r is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(r["median"] * scale)
            lo.append((r["median"] - r["min"]) * scale)
            hi.append((r["max"] - r["median"]) * scale)
            value = r["median"] * scale
            label = f"{value:.0f}" if value >= 100 else f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"
            ref = next((x for x in mine if x["scenario"] == sc and x["system"] == "nftables-dnat"), None)
            if metric in ("pps", "conn_per_s") and ref and ref["median"] > 0 and system != "nftables-dnat":
                label += f"\n{r['median'] / ref['median']:.1f}×"
            labels.append(label)
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=system, color=COLORS.get(system))
        for b, text, up in zip(bars, labels, hi):
            ax.annotate(text, (b.get_x() + b.get_width() / 2, b.get_height() + up), ha="center", va="bottom", fontsize=6,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.2)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def main(argv):
    src = argv[1] if len(argv) > 1 else "bench-results/e2e.json"
    out = argv[2] if len(argv) > 2 else "bench-results/e2e.png"
    rows = load(src)
    present = [p for p in PANELS if any(r["metric"] == p[0] for r in rows)]
    if not present:
        raise SystemExit(f"{src}: no rows to draw")
    fig, axes = plt.subplots(len(present), 1, figsize=(11.5, 3.6 * len(present)), squeeze=False)
    for ax, (metric, title, scale) in zip(axes[:, 0], present):
        panel(ax, rows, metric, title, scale)
    fig.suptitle("xlb end to end (medians, whiskers min..max; ratios vs nftables DNAT)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
