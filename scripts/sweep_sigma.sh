#!/usr/bin/env bash
# Sweeps the noise level of a cwo config: for each value and seed,
#   normexp run CONFIG --set norm.noise.sigma=V [--set norm.noise.schedule=S] --seed K --resume ...
# Usage: sweep_sigma.sh CONFIG --values 0.2,0.4 [--seeds 0,1] [--schedule linear] [-- extra normexp run args]
# --resume makes a completed run a no-op, so re-running the sweep only trains what is missing.
# A failing run (non-zero exit) does not stop the sweep; failures are listed at the end and
# the script exits 1 when there were any. The binary: $NORMEXP_BIN or build/apps/normexp/normexp.
exec "$(dirname "$0")/sweep.sh" norm.noise.sigma norm.noise.schedule "$@"
