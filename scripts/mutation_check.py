#!/usr/bin/env python3
"""Mutation check: do the tests fail when the numerics are broken?

Applies one hand-made mutant of tests/mutants.json at a time (a line of lib/ changed the way a
plausible bug would change it), rebuilds the test binaries it names, runs them, records KILLED
(some test failed) or SURVIVED (all passed), and restores the file. A survivor is a bug the
suite cannot see: add the test that catches it (README, "Mutation check").

    python3 scripts/mutation_check.py [--build build] [--out FILE] [ID ...]

About 90 s a mutant on 2 cores (one compile, two links, ~70 s of tests). The tree must be
clean: the file is restored from memory after each mutant, and the build is brought back to
the unmutated sources at the end. A mutant whose text no longer occurs exactly once is
reported as STALE (the code moved on: update or drop it).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_mutant(m, build, timeout):
    path = ROOT / m["file"]
    source = path.read_text()
    if source.count(m["old"]) != 1:
        return "STALE", [f"text occurs {source.count(m['old'])} times in {m['file']}"]
    path.write_text(source.replace(m["old"], m["new"]))
    try:
        binaries = sorted({binary for binary, _ in m["runs"]})
        b = subprocess.run(["ninja", "-C", build] + binaries, cwd=ROOT, capture_output=True, text=True)
        if b.returncode != 0:
            return "BUILD_FAILED", [b.stdout[-400:]]
        failed = []
        for binary, gtest_filter in m["runs"]:
            r = subprocess.run([f"{build}/tests/{binary}", f"--gtest_filter={gtest_filter}", "--gtest_brief=1"],
                               cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            failed += [line.split()[3] for line in r.stdout.splitlines()
                       if line.startswith("[  FAILED  ]") and len(line.split()) > 3 and "." in line.split()[3]]
            if r.returncode != 0 and not failed:
                failed.append(f"{binary} exited {r.returncode}")
        return ("KILLED" if failed else "SURVIVED"), sorted(set(failed))
    except subprocess.TimeoutExpired:
        return "KILLED", ["timeout"]
    finally:
        path.write_text(source)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None,
                    help="JSON lines, appended to (default: BUILD/mutation_check.jsonl, beside "
                         "the binaries it tested, outside git's view)")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per test binary run")
    ap.add_argument("ids", nargs="*", help="only these mutants")
    a = ap.parse_args()
    if subprocess.run(["git", "diff", "--quiet", "--", "lib"], cwd=ROOT).returncode != 0:
        sys.exit("mutation_check: lib/ has uncommitted changes; commit or stash them first")
    if a.out is None:
        a.out = str(ROOT / a.build / "mutation_check.jsonl")
    mutants = json.loads((ROOT / "tests/mutants.json").read_text())["mutants"]
    counts = {}
    with open(a.out, "a") as out:
        for m in mutants:
            if a.ids and m["id"] not in a.ids:
                continue
            t0 = time.time()
            result, detail = run_mutant(m, a.build, a.timeout)
            counts[result] = counts.get(result, 0) + 1
            rec = {"id": m["id"], "result": result, "seconds": round(time.time() - t0), "tests": detail}
            print(json.dumps(rec), flush=True)
            out.write(json.dumps(rec) + "\n")
            out.flush()  # a check stopped halfway keeps the mutants it finished
    subprocess.run(["ninja", "-C", a.build], cwd=ROOT, capture_output=True)
    print(" ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    sys.exit(1 if counts.get("SURVIVED") or counts.get("BUILD_FAILED") else 0)


if __name__ == "__main__":
    main()
