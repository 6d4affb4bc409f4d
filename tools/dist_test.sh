#!/usr/bin/env bash
# Distributed testing over torchrun: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT. Without CUDA it runs GPUS processes
# on CPU over gloo. PYTHON defaults to the checkout's .venv, if there is one.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ROOT/.venv/bin/python" ] && DEFAULT_PYTHON=$ROOT/.venv/bin/python || DEFAULT_PYTHON=python
PYTHON=${PYTHON:-$DEFAULT_PYTHON}

PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
