#!/usr/bin/env bash
# Shared by sweep_sigma.sh and sweep_alpha.sh:
#   sweep.sh KEY SCHEDULE_KEY CONFIG --values V1,V2 [--seeds 0,1] [--schedule S] [-- extra args]
# SCHEDULE_KEY is empty when the swept key has no schedule to pick (then --schedule is refused).
set -uo pipefail
usage() {
  echo "usage: $(basename "$0") CONFIG --values V1,V2,... [--seeds 0,1,...] [--schedule S] [-- normexp run args]" >&2
  exit 2
}
key=$1 schedule_key=$2
shift 2
(($#)) || usage
config=$1
shift
values="" seeds="0" schedule="" extra=()
while (($#)); do
  case $1 in
    --values) values=${2:-}; shift 2 || usage ;;
    --seeds) seeds=${2:-}; shift 2 || usage ;;
    --schedule)
      [ -n "$schedule_key" ] || { echo "--schedule: $key has no schedule" >&2; exit 2; }
      schedule=${2:-}; shift 2 || usage ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$values" ] || usage
bin=${NORMEXP_BIN:-$(dirname "$0")/../build/apps/normexp/normexp}
[ -x "$bin" ] || { echo "normexp binary not found at $bin (build it, or set NORMEXP_BIN)" >&2; exit 2; }

IFS=, read -ra value_list <<<"$values"
IFS=, read -ra seed_list <<<"$seeds"
failures=()
for v in "${value_list[@]}"; do
  for k in "${seed_list[@]}"; do
    cmd=("$bin" run "$config" --set "$key=$v")
    [ -n "$schedule" ] && cmd+=(--set "$schedule_key=$schedule")
    cmd+=(--seed "$k" --resume "${extra[@]}")
    echo "sweep: ${cmd[*]}"
    "${cmd[@]}"
    rc=$?
    # 130/143: the run was stopped by SIGINT/SIGTERM and wrote its checkpoint. Bash goes on
    # after a signal its child handled, so without this, Ctrl-C would stop one run of the
    # sweep and start the next.
    if ((rc == 130 || rc == 143)); then
      echo "sweep: stopped at $key=$v seed $k (exit $rc); the same command continues it" >&2
      exit "$rc"
    fi
    ((rc == 0)) || failures+=("$key=$v seed $k: exit $rc")
  done
done
if ((${#failures[@]})); then
  echo "sweep: ${#failures[@]} failed run(s):" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "sweep: all ${#value_list[@]} x ${#seed_list[@]} runs completed"
