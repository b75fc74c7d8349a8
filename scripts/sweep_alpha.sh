#!/usr/bin/env bash
# Sweeps norm.alpha, BCN's band thickness (Markou: ||y|| in [1 - alpha, 1]; needs norm.name:
# bcn, any other scheme fails as a config error), e.g. the §5.4 ablation:
#   scripts/sweep_alpha.sh configs/bcn/cifar100_resnet50_bcn.yaml --values 0.1,0.2,0.3
#   normexp run CONFIG --set norm.alpha=V --seed K --resume ...
# Usage: sweep_alpha.sh CONFIG --values 0.1,0.2,0.3 [--seeds 0,1] [-- extra normexp run args]
# Same behaviour as sweep_sigma.sh (resume, continue past failures, list them, exit 1).
exec "$(dirname "$0")/sweep.sh" norm.alpha "" "$@"
