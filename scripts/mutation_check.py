#!/usr/bin/env python3
"""Mutation check: do the tests fail when the numerics are broken?

Applies one hand-made mutant of tests/mutants.json at a time (a line of lib/ changed the way a
plausible bug would change it), rebuilds the test binaries it names, runs them, records KILLED
(some test failed) or SURVIVED (all passed), and restores the file. A survivor is a bug the
suite cannot see: add the test that catches it (README, "Mutation check").

    python3 scripts/mutation_check.py [--build build] [--out FILE] [--changed-since REV]
                                      [--all-failures] [ID ...]

Each test binary stops at its first failing test (--gtest_fail_fast), so a killed mutant
costs one compile, the links and the tests up to the first failure; --all-failures lists
every failing test instead. --changed-since REV checks only the mutants whose file changed
after REV (the code a past check no longer vouches for). The tree must be clean: the file is
restored from memory after each mutant (also when the check is stopped by SIGINT or SIGTERM),
and the build is brought back to the unmutated sources at the end. A mutant whose text no longer occurs exactly once is
reported as STALE (the code moved on: update or drop it); --verify-texts checks only that,
for every mutant, without building (a test in the suite: a refactor that moves a mutant's
line must update the mutant with it).
"""
import argparse
import json
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_mutant(m, build, timeout, fail_fast):
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
            cmd = [f"{build}/tests/{binary}", f"--gtest_filter={gtest_filter}", "--gtest_brief=1"]
            r = subprocess.run(cmd + (["--gtest_fail_fast"] if fail_fast else []),
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


def verify_texts(mutants):
    ids = [m["id"] for m in mutants]
    bad = [f"{i}: id used {ids.count(i)} times" for i in sorted(set(ids)) if ids.count(i) > 1]
    for m in mutants:
        path = ROOT / m["file"]
        if not path.is_file():
            bad.append(f"{m['id']}: no file {m['file']}")
            continue
        n = path.read_text().count(m["old"])
        if n != 1:
            bad.append(f"{m['id']}: its text occurs {n} times in {m['file']}: {m['old']!r}")
        elif m["old"] == m["new"]:
            bad.append(f"{m['id']}: old and new are the same text")
    for line in bad:
        print("STALE", line)
    print(f"{len(mutants) - len(bad)} of {len(mutants)} mutants apply")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None,
                    help="JSON lines, appended to (default: BUILD/mutation_check.jsonl, beside "
                         "the binaries it tested, outside git's view)")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per test binary run")
    ap.add_argument("--changed-since", metavar="REV", default=None,
                    help="only the mutants whose file changed after this git revision")
    ap.add_argument("--all-failures", action="store_true",
                    help="run every test of a binary, not only up to the first failure")
    ap.add_argument("--verify-texts", action="store_true",
                    help="only check that each mutant's text occurs once in its file; no build")
    ap.add_argument("--mutants", default=str(ROOT / "tests/mutants.json"), help=argparse.SUPPRESS)
    ap.add_argument("ids", nargs="*", help="only these mutants")
    a = ap.parse_args()
    # SIGTERM (a job's time limit) unwinds like SIGINT, so the mutated file is restored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    mutants = json.loads(pathlib.Path(a.mutants).read_text())["mutants"]
    if a.verify_texts:
        sys.exit(verify_texts(mutants))
    if subprocess.run(["git", "diff", "--quiet", "--", "lib"], cwd=ROOT).returncode != 0:
        sys.exit("mutation_check: lib/ has uncommitted changes; commit or stash them first")
    if a.out is None:
        a.out = str(ROOT / a.build / "mutation_check.jsonl")
    unknown = set(a.ids) - {m["id"] for m in mutants}
    if unknown:
        sys.exit(f"mutation_check: no mutant {', '.join(sorted(unknown))} in tests/mutants.json")
    if a.changed_since:
        def changed(f):
            r = subprocess.run(["git", "diff", "--quiet", a.changed_since, "HEAD", "--", f], cwd=ROOT)
            if r.returncode > 1:
                sys.exit(f"mutation_check: git cannot compare {a.changed_since} with HEAD")
            return r.returncode == 1
        mutants = [m for m in mutants if changed(m["file"])]
    counts = {}
    with open(a.out, "a") as out:
        for m in mutants:
            if a.ids and m["id"] not in a.ids:
                continue
            t0 = time.time()
            result, detail = run_mutant(m, a.build, a.timeout, not a.all_failures)
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
