#!/usr/bin/env python3
"""The short table of bench/h200_session.sh: reads OUT/json/*.json (normexp bench, the PyTorch
peer, bench norms, the matmul peak) and prints Markdown with issue 14's targets beside each
figure. Missing files (a step skipped or cut short) become missing rows, never an error."""
import glob
import json
import os
import sys


def load(out, name):
    try:
        with open(os.path.join(out, "json", name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def by_name(rows, suffix):
    for r in rows or []:
        if r.get("name", "").endswith(suffix):
            return r
    return None


def fmt(x, spec=".1f", unit=""):
    return "–" if x is None else f"{x:{spec}}{unit}"


def main(out):
    peak = (load(out, "matmul_peak") or {}).get("peak_tflop_per_s")
    lines = ["## normexp on " + next((r.get("device", "?") for r in (load(out, "wrn_b128") or [])), "?"), ""]
    if peak:
        lines.append(f"bf16 matmul peak measured in this call: {peak:.0f} TFLOP/s")
        lines.append("")
    lines += ["| workload | eager img/s | graphs img/s | graphs/eager | peer eager img/s | "
              "normexp best / peer | TFLOP/s (best) | % of peak |",
              "|---|---|---|---|---|---|---|---|"]
    for label, peer, title in [("wrn_b128", "peer_wrn_b128_eager", "WRN-28-10 B128"),
                               ("r110_b128", "peer_r110_b128_eager", "ResNet-110 B128"),
                               ("wrn_b4", "peer_wrn_b4_eager", "WRN-28-10 B4")]:
        rows = load(out, label)
        e, g = by_name(rows, "_eager"), by_name(rows, "_graphs")
        p = load(out, peer)
        ei = e and e["images_per_s"]
        gi = g and g["images_per_s"]
        best = max([r for r in (e, g) if r], key=lambda r: r["images_per_s"], default=None)
        pi = p and p["images_per_s"]
        tf = best and best.get("train_tflop_per_s")
        lines.append("| " + " | ".join([
            title, fmt(ei), fmt(gi) + ("" if not g else f" ({g.get('cuda_graphs')})"),
            fmt(gi / ei if ei and gi else None, ".2f", "×"), fmt(pi),
            fmt(best["images_per_s"] / pi if best and pi else None, ".2f", "×"),
            fmt(tf), fmt(100 * tf / peak if tf and peak else None, ".0f", " %")]) + " |")
    lines += ["", "Targets: WRN B128 ≥ peer eager and ≥ 35 % of peak; graphs ≥ 2× eager for "
              "ResNet-110 B128 and WRN B4.", ""]

    cwo = load(out, "cwo_wrn")
    if cwo:
        lines += ["| cwo + noise vs bn, WRN-28-10 B128 | bn img/s | cwo img/s | cwo cost |",
                  "|---|---|---|---|"]
        for mode in ("graphs", "eager"):
            bn = by_name(cwo, f"wrn_b128_{mode}")
            cw = by_name(cwo, f"wrn_cwo_b128_{mode}")
            if bn and cw:
                cost = 100 * (bn["images_per_s"] / cw["images_per_s"] - 1)
                lines.append(f"| {mode} | {bn['images_per_s']:.1f} | {cw['images_per_s']:.1f} | "
                             f"{cost:+.1f} % per step (target ≤ +5 %) |")
        lines.append("")

    vit = load(out, "vitb16")
    ln, bcn = by_name(vit, "_ln"), by_name(vit, "_bcn")
    if ln and bcn:
        lines += [f"ViT-B/16 training step: LN {ln['images_per_s']:.1f} img/s, BCN "
                  f"{bcn['images_per_s']:.1f} img/s ({100 * (ln['images_per_s'] / bcn['images_per_s'] - 1):+.1f} % "
                  "time per step with BCN)", ""]

    for dt in ("bf16", "fp32"):
        n = load(out, "norms_" + dt)
        if not n:
            continue
        lines += [f"| bench norms {dt}: shape | baseline | fwd +% fused | fwd +% op chain | "
                  "bwd +% fused | bwd +% op chain | mem +% fused |",
                  "|---|---|---|---|---|---|---|"]
        for r in n.get("results", []):
            f, b, m = r["forward_ms"], r["backward_ms"], r["forward_memory_bytes"]
            pct = lambda x: fmt(100 * (x - 1) if x is not None else None, "+.1f")
            lines.append(f"| {r['shape']} | {r['baseline']} | {pct(f.get('ratio'))} | "
                         f"{pct(f.get('op_chain_ratio'))} | {pct(b.get('ratio'))} | "
                         f"{pct(b.get('op_chain_ratio'))} | {pct(m.get('ratio'))} |")
        lines.append("")

    ests = glob.glob(os.path.join(out, "json", "est_*.json"))
    if ests:
        lines.append(f"plan --estimate used {len(ests)} bench files (summary.txt has the hours).")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/normexp-h200")
