#!/usr/bin/env bash
# Sweeps norm.alpha (the BCN scheme's mixing weight: needs a norm scheme with an `alpha` option;
# BCN is not implemented yet, and with a scheme without one every run fails as a config error):
#   normexp run CONFIG --set norm.alpha=V --seed K --resume ...
# Usage: sweep_alpha.sh CONFIG --values 0.25,0.5 [--seeds 0,1] [-- extra normexp run args]
# Same behaviour as sweep_sigma.sh (resume, continue past failures, list them, exit 1).
exec "$(dirname "$0")/sweep.sh" norm.alpha "" "$@"
