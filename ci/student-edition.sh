#!/usr/bin/env bash
# Export the "student edition" of this grader into OUT_DIR: what student repositories' workflows may see.
#
#   ci/student-edition.sh OUT_DIR [REF]     (REF: a commit of this repository; default HEAD)
#
# It keeps the grader, the assignments (handouts, stubs, public checks), the Docker build and ci/, and leaves
# out solutions/ (reference code, hidden checks), examples/ (solved submissions), tests/ and bench/. It is made
# from committed files only (git archive) and has no history: publish it as a fresh public repository. The
# reusable workflows are copied into .github/workflows/, where GitHub looks for them.
set -euo pipefail
out=${1:?usage: ci/student-edition.sh OUT_DIR [REF]}
ref=${2:-HEAD}
cd "$(dirname "$0")/.."
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "student-edition: $out exists and is not empty" >&2
    exit 2
fi
mkdir -p "$out"
keep=(grader assignments docker ci docs pyproject.toml README.md)
present=()
for path in "${keep[@]}"; do
    if git cat-file -e "$ref:$path" 2> /dev/null; then present+=("$path"); fi
done
git archive "$ref" "${present[@]}" | tar -x -C "$out"
mkdir -p "$out/.github/workflows"
if [ -d "$out/ci/workflows" ]; then cp "$out"/ci/workflows/*.yml "$out/.github/workflows/"; fi
for leak in solutions examples; do
    if [ -e "$out/$leak" ]; then echo "student-edition: $leak/ must not be published" >&2; exit 1; fi
done
echo "student edition of $(git rev-parse --short "$ref") in $out:"
ls -A "$out"
