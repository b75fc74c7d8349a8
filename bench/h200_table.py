#!/usr/bin/env python3
"""The short table of bench/h200_session.sh: reads DIR/json/*.json (normexp bench, the PyTorch
peer, bench norms, the matmul peak) and prints Markdown with issue 14's targets beside each
figure. It runs last in a GPU call that may have been cut short, so nothing in those files
stops it: a missing, unreadable or odd-shaped file, a missing key, a null or zero figure all
become a "–" or a missing row, and a section that still fails says so in one line while the
others print."""
import glob
import json
import math
import os
import sys


def load(out, name):
    try:
        with open(os.path.join(out, "json", name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rows_of(data):
    """normexp bench writes an array of objects, one per config."""
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def obj(data):
    return data if isinstance(data, dict) else {}


def num(d, key):
    """d[key] when it is a finite number, else None."""
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def by_name(rows, suffix):
    for r in rows:
        if str(r.get("name", "")).endswith(suffix):
            return r
    return None


def fmt(x, spec=".1f", unit=""):
    return "–" if x is None else f"{x:{spec}}{unit}"


def pct(x):
    return fmt(100 * (x - 1) if x is not None else None, "+.1f")


def speed_table(out, peak):
    lines = ["| workload | eager img/s | graphs img/s | graphs/eager | peer eager img/s | "
             "peer graphs img/s | normexp best / peer eager | TFLOP/s (best) | % of peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, peer, title in [("wrn_b128", "peer_wrn_b128", "WRN-28-10 B128"),
                               ("r110_b128", "peer_r110_b128", "ResNet-110 B128"),
                               ("wrn_b4", "peer_wrn_b4", "WRN-28-10 B4")]:
        rows = rows_of(load(out, label))
        e, g = by_name(rows, "_eager"), by_name(rows, "_graphs")
        ei, gi = num(e, "images_per_s"), num(g, "images_per_s")
        pe = num(obj(load(out, peer + "_eager")), "images_per_s")
        pg = num(obj(load(out, peer + "_graphs")), "images_per_s")
        best = max([r for r in (e, g) if num(r, "images_per_s") is not None],
                   key=lambda r: num(r, "images_per_s"), default=None)
        bi, tf = num(best, "images_per_s"), num(best, "train_tflop_per_s")
        graphs = f" ({g.get('cuda_graphs')})" if g and g.get("cuda_graphs") else ""
        lines.append("| " + " | ".join([
            title, fmt(ei), fmt(gi) + graphs, fmt(ratio(gi, ei), ".2f", "×"), fmt(pe), fmt(pg),
            fmt(ratio(bi, pe), ".2f", "×"), fmt(tf),
            fmt(100 * tf / peak if tf is not None and peak else None, ".0f", " %")]) + " |")
    compiled = num(obj(load(out, "peer_wrn_b128_compile")), "images_per_s")
    if compiled is not None:
        lines += ["", f"PyTorch peer, WRN-28-10 B128 with torch.compile: {compiled:.1f} img/s"]
    return lines + ["", "Targets: WRN B128 ≥ peer eager and ≥ 35 % of peak; graphs ≥ 2× eager "
                    "for ResNet-110 B128 and WRN B4.", ""]


def cwo_table(out):
    cwo = rows_of(load(out, "cwo_wrn"))
    if not cwo:
        return []
    lines = ["| cwo + noise vs bn, WRN-28-10 B128 | bn img/s | cwo img/s | cwo cost |",
             "|---|---|---|---|"]
    for mode in ("graphs", "eager"):
        bn = num(by_name(cwo, f"wrn_b128_{mode}"), "images_per_s")
        cw = num(by_name(cwo, f"wrn_cwo_b128_{mode}"), "images_per_s")
        if bn is not None or cw is not None:
            cost = ratio(bn, cw)
            lines.append(f"| {mode} | {fmt(bn)} | {fmt(cw)} | "
                         f"{pct(cost)} % per step (target ≤ +5 %) |")
    return lines + [""]


def vit_line(out):
    vit = rows_of(load(out, "vitb16"))
    ln = num(by_name(vit, "_ln"), "images_per_s")
    bcn = num(by_name(vit, "_bcn"), "images_per_s")
    if ln is None and bcn is None:
        return []
    return [f"ViT-B/16 training step: LN {fmt(ln)} img/s, BCN {fmt(bcn)} img/s "
            f"({pct(ratio(ln, bcn))} % time per step with BCN)", ""]


def norms_tables(out):
    lines = []
    for dt in ("bf16", "fp32"):
        results = [r for r in obj(load(out, "norms_" + dt)).get("results", []) or []
                   if isinstance(r, dict)]
        if not results:
            continue
        # "whole map": vector: sample, stats: batch, the paper ResNet configs' reading (maps only)
        lines += [f"| bench norms {dt}: shape | baseline | fwd +% fused | fwd +% op chain | "
                  "bwd +% fused | bwd +% op chain | mem +% fused | fwd/bwd/mem +% whole map |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results:
            f, b, m = (obj(r.get(k)) for k in ("forward_ms", "backward_ms",
                                               "forward_memory_bytes"))
            lines.append(f"| {r.get('shape', '?')} | {r.get('baseline', '?')} | "
                         f"{pct(num(f, 'ratio'))} | {pct(num(f, 'op_chain_ratio'))} | "
                         f"{pct(num(b, 'ratio'))} | {pct(num(b, 'op_chain_ratio'))} | "
                         f"{pct(num(m, 'ratio'))} | "
                         f"{pct(num(f, 'whole_map_ratio'))} / {pct(num(b, 'whole_map_ratio'))} / "
                         f"{pct(num(m, 'whole_map_ratio'))} |")
        lines.append("")
    return lines


def main(out):
    peak = num(obj(load(out, "matmul_peak")), "peak_tflop_per_s")
    device = next((r.get("device") for r in rows_of(load(out, "wrn_b128")) if r.get("device")),
                  "?")
    lines = [f"## normexp on {device}", ""]
    if peak:
        lines += [f"bf16 matmul peak measured in this call: {peak:.0f} TFLOP/s", ""]
    for section in (lambda: speed_table(out, peak), lambda: cwo_table(out),
                    lambda: vit_line(out), lambda: norms_tables(out)):
        try:
            lines += section()
        except Exception as e:  # one odd file must not cost the other sections
            lines += [f"(a section of the table failed: {type(e).__name__}: {e})", ""]
    ests = glob.glob(os.path.join(out, "json", "est_*.json"))
    if ests:
        lines.append(f"plan --estimate used {len(ests)} bench files (summary.txt has the hours).")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/normexp-h200")
