#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG GPUS [train.py options] (see torchrun.sh).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
exec "$(dirname "$0")/torchrun.sh" train.py "$2" "$1" "${@:3}"
