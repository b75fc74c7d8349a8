#!/usr/bin/env python3
"""The bf16 dense-matrix peak this GPU reaches (PyTorch matmul), the yardstick for normexp's
achieved TFLOP/s (issue 14 asks for >= 35 % of it on WRN-28-10). Best of a few square sizes,
each timed with CUDA events over back-to-back matmuls after a warmup. On CPU (the dry run of
bench/h200_session.sh) it times float32 at small sizes, only to show the script works."""
import argparse
import json
import os
import tempfile
import time

import torch


def measure(n, dtype, device, iters):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        t1.record()
        torch.cuda.synchronize()
        seconds = t0.elapsed_time(t1) / 1e3
    else:
        s = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        seconds = time.perf_counter() - s
    return 2.0 * n ** 3 * iters / seconds / 1e12


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", help="write the JSON here (atomically)")
    args = ap.parse_args()
    cuda = torch.device(args.device).type == "cuda"  # also cuda:0
    dtype = torch.bfloat16 if cuda else torch.float32
    sizes = [4096, 8192, 16384] if cuda else [128, 256]
    rows = [{"n": n, "tflop_per_s": measure(n, dtype, args.device, 50 if cuda else 3)}
            for n in sizes]
    best = max(rows, key=lambda r: r["tflop_per_s"])
    result = {
        "benchmark": "matmul_peak",
        "dtype": str(dtype).replace("torch.", ""),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
        "sizes": rows,
        "peak_tflop_per_s": best["tflop_per_s"],
    }
    if args.out:
        d = os.path.dirname(os.path.abspath(args.out))
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.out)
    print(f"{result['dtype']} matmul peak on {result['device']}: "
          f"{best['tflop_per_s']:.1f} TFLOP/s (n = {best['n']})")


if __name__ == "__main__":
    main()
