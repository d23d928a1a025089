#!/bin/bash
# One-shot `grader grade exp1` of the bundled solution: an older commit's grader/ against the working tree's,
# alternating in one run, each round with `python -c "import torch"` first.
#
#     bench/oneshot_ab.sh REV [ROUNDS]
#
# Each tree is swapped into grader/ in turn with its bytecode kept (a plain checkout would make every run
# recompile). The working tree's grader/ is restored at the end, also on Ctrl-C. Run it with nothing else busy.
set -euo pipefail
rev=${1:?usage: bench/oneshot_ab.sh REV [ROUNDS]}
rounds=${2:-5}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
cp -a grader "$work/new"
git archive "$rev" grader | tar -x -C "$work" && mv "$work/grader" "$work/old"
restore() { rm -rf grader && cp -a "$work/new" grader && rm -rf "$work"; }
trap restore EXIT
secs() { local s; s=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc | cut -c1-5; }
use() { rm -rf grader && cp -a "$work/$1" grader; }
keep() { rm -rf "$work/$1" && cp -a grader "$work/$1"; }
echo "round import-torch $rev working-tree"
for r in $(seq 0 "$rounds"); do
  t=$(secs .venv/bin/python -c 'import torch')
  use old; a=$(secs .venv/bin/grader grade exp1 examples/exp1/solution --out "$work/out-old"); keep old
  use new; b=$(secs .venv/bin/grader grade exp1 examples/exp1/solution --out "$work/out-new"); keep new
  echo "$([ "$r" = 0 ] && echo warm-up || echo "$r") $t $a $b"
done
