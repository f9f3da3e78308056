#!/usr/bin/env bash
# Prepare, here (a machine that reaches PyPI), everything tools/gpu_run.sh needs on a lent GPU:
# the carry folder .gpu_carry/ (git-ignored) with wheels for what the device lacks, styles and
# as many training photos as fit in the device tool's 64 MiB with the checkout
# (tools/gpu_carry.py says how). Run it in the checkout the session was started in: that is
# the repo the device tool sends, whichever worktree calls it.
#
#   tools/gpu_prepare.sh [--photos DIR] [--styles DIR] [--clips DIR] [--margin BYTES]
#   tools/gpu_prepare.sh --restore      # after the GPU calls: docs/ back in the working tree
#
# The device needs the code, not the evidence: docs/ (about 20 MiB of figures and JSON by
# 2026-12-03, with the 43 MiB of wheels more than the 64 MiB that travel) is left out of the
# working tree by a sparse checkout until --restore (`git sparse-checkout disable`). Its
# files stay committed; only edits to docs/ must wait for the restore.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --restore ]; then
    git sparse-checkout disable
    echo "docs/ is back in the working tree"
    exit 0
fi
if [ -n "$(git status --porcelain -- docs)" ]; then
    echo "error: docs/ has uncommitted changes: commit them before it is left out" >&2
    exit 1
fi
git sparse-checkout set --no-cone '/*' '!/docs/'
echo "docs/ left out of the working tree for the GPU calls (tools/gpu_prepare.sh --restore)"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! git check-ignore -q .gpu_carry/; then
    echo "error: .gpu_carry is not git-ignored here: it would travel twice" >&2
    exit 1
fi
"$PY" tools/gpu_carry.py "$@"
cat <<'CALL'
Next, when `status` says can_start_another: true, one call of the device tool:
  run(command="bash tools/gpu_run.sh $OUT", carry=[".gpu_carry"], timeout_s=480)
(docs/BENCHMARKS.md, "Measuring the GPU rows", says what comes back and how to rerun a step.)
Afterwards: tools/gpu_prepare.sh --restore
CALL
