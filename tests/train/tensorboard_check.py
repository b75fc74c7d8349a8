"""Reads a run directory's TensorBoard events with TensorBoard's own reader and checks them
against history.jsonl and metrics.json (tests/train/tensorboard_test.cpp runs it).

Usage: python tensorboard_check.py RUN_DIR [--task]. Prints OK or the first mismatch; exit
0 / 1. --task: a non-classification task's run, whose history fields are the scalars' tags.
"""
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def main(run_dir, task=False):
    metrics = json.load(open(f"{run_dir}/metrics.json"))
    # A run that diverged in its first epoch wrote no history row, so there is no scalar to compare.
    no_rows = metrics["status"] == "diverged" and not os.path.exists(f"{run_dir}/history.jsonl")
    history = [] if no_rows else [
        json.loads(line) for line in open(f"{run_dir}/history.jsonl") if line.strip()]
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    pairs = {"train/loss": "train_loss", "test/err": "test_err", "test/loss": "test_loss",
             "lr": "lr", "train/err": "train_err", "test/acc": "test_acc"}
    if no_rows:
        pairs = {}
    elif task:  # a task's history: every numeric field is a scalar of its own name
        pairs = {k: k for k, v in history[0].items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and k not in ("step", "wall_time")}
        if not pairs:
            return "no numeric field in the history"
        for row in history:
            row.setdefault("step", row.get("epoch"))
    for tag, key in pairs.items():
        if tag not in tags:
            return f"no scalar {tag} (have {sorted(tags)})"
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if steps != [row["step"] for row in history]:
            return f"{tag}: steps {steps}, history has {[row['step'] for row in history]}"
        for e, row in zip(events, history):
            if not math.isclose(e.value, row[key], rel_tol=1e-6, abs_tol=1e-6):
                return f"{tag} at step {e.step}: {e.value} vs history {row[key]}"
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    hp = start.hparams
    if hp["optim.lr"].number_value != metrics["config"]["optim"]["lr"]:
        return f"hparam optim.lr {hp['optim.lr']} vs {metrics['config']['optim']['lr']}"
    if hp["norm.name"].string_value != metrics["config"]["norm"]["name"]:
        return f"hparam norm.name {hp['norm.name']}"
    if start.group_name != f"{metrics['name']}/{metrics['hash']}":
        return f"group {start.group_name}"
    if metrics["status"] in ("completed", "diverged"):
        if "_hparams_/session_end_info" not in content:
            return f"a {metrics['status']} run without a session end"
        end = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_end_info"]).session_end_info
        want = 1 if metrics["status"] == "completed" else 2  # STATUS_SUCCESS, STATUS_FAILURE
        if end.status != want:
            return f"session end status {end.status} for a {metrics['status']} run, want {want}"
    return "OK"


if __name__ == "__main__":
    result = main(sys.argv[1], task="--task" in sys.argv[2:])
    print(result)
    sys.exit(0 if result == "OK" else 1)
