#!/usr/bin/env bash
# The launcher behind dist_train.sh and dist_test.sh: tools/torchrun.sh SCRIPT NPROC [args]
# runs tools/SCRIPT in NPROC processes per node over torchrun with --launcher pytorch.
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT. On one node without PORT, torchrun
# takes a free port itself, so that runs side by side cannot collide. Without CUDA the processes
# run on CPU over gloo. PYTHON defaults to the checkout's .venv, if there is one.
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
if ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then
    echo "error: GPUS, the number of processes, must be a positive integer, got '$NPROC'" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ROOT/.venv/bin/python" ] && DEFAULT_PYTHON=$ROOT/.venv/bin/python || DEFAULT_PYTHON=python
PYTHON=${PYTHON:-$DEFAULT_PYTHON}

# torchrun's own default port is 29500, for several nodes.
PORT_ARG=()
if [ -n "${PORT:-}" ]; then PORT_ARG=(--master_port="$PORT"); fi

# exec: a signal to this script (a scheduler cancelling the job) reaches torchrun, which stops
# the processes it started.
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    ${PORT_ARG[@]+"${PORT_ARG[@]}"} \
    "$ROOT/tools/$SCRIPT" "$@" --launcher pytorch
