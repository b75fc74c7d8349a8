#!/usr/bin/env bash
# Every repository path a Markdown file names, and every table spec it passes to
# `normexp report|plan|plot`, exists: a renamed config or script fails here, not in a reader's
# shell. Paths start at one of the repository's top folders (configs/, scripts/, bench/,
# tests/, lib/, apps/, cmake/, fuzz/, results/); {a,b} and * in them are expanded as the shell
# would. Prints each missing one and exits 1; prints the count checked and exits 0 otherwise.
#
#   scripts/readme_paths.sh README.md [ROOT]     # ROOT: where the paths are (default: the
#                                                # file's folder)
set -euo pipefail
file=$1
root=${2:-$(cd "$(dirname "$file")" && pwd)}
missing=0 checked=0
# A path: a top folder, then names, braces, commas and globs; a trailing full stop or comma is
# the sentence's.
top='(configs|scripts|bench|tests|lib|apps|cmake|fuzz|results)'
paths=$(grep -oE "(^|[^A-Za-z0-9_./-])$top/[][A-Za-z0-9_./*{},-]*" "$file" |
  sed -E 's/^[^a-z]//; s/[.,]+$//' | sort -u)
cd "$root"
while IFS= read -r path; do
  [ -n "$path" ] || continue
  # Brace expansion only for {a,b} (eval on our own README's words, no $ or backquote in them);
  # globs stay as written (noglob) for compgen below.
  case $path in *'$'* | *'`'*) continue ;; esac
  set -f
  eval "expanded=($path)"
  set +f
  for p in "${expanded[@]}"; do
    checked=$((checked + 1))
    if [[ $p == *'*'* ]]; then
      if ! compgen -G "$p" >/dev/null; then
        echo "missing: $p (no file matches)"
        missing=$((missing + 1))
      fi
    elif [ ! -e "$p" ]; then
      echo "missing: $p"
      missing=$((missing + 1))
    fi
  done
done <<<"$paths"
# A name with a capital is a placeholder (TABLE, SPEC, ikami_tableN), not a spec.
specs=$(grep -oE 'normexp (report|plan|plot) [a-z][A-Za-z0-9_]*' "$file" | awk '{print $3}' |
  grep -v '[A-Z]' | sort -u || true)
while IFS= read -r spec; do
  [ -n "$spec" ] || continue
  checked=$((checked + 1))
  if [ ! -e "configs/tables/$spec.yaml" ]; then
    echo "missing: table spec $spec (configs/tables/$spec.yaml)"
    missing=$((missing + 1))
  fi
done <<<"$specs"
if ((missing)); then
  echo "$missing of $checked named paths and specs missing in $file"
  exit 1
fi
echo "$checked named paths and specs exist"
