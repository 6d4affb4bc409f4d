"""Fold a model's dynamic position biases for one input size; check and time the result.

    python tools/fold_dpb.py configs/crossformer_s_in1k.py --shape 224 224 [--checkpoint X]

Builds the config's model, folds a copy with :func:`crossformer_mm.deploy.fold_position_bias`,
prints the largest difference of their features (``extract_feat``: backbone and neck) and the
time per forward of each. In code, call ``fold_position_bias(model, [(H, W)])`` before export.
"""
import argparse
import copy
import time

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope
from mmengine.runner import load_checkpoint

import crossformer_mm  # noqa: F401
from crossformer_mm.checkpoint import (NotACheckpointError, UnsafeCheckpointError,
                                       local_checkpoint, reading)
from crossformer_mm.deploy import fold_position_bias


def median_seconds(fns: dict, runs: int, clock=time.perf_counter) -> dict:
    """Median time of each ``fn()`` by ``clock``, the calls interleaved so drift hits all alike."""
    times = {name: [] for name in fns}
    for i in range(runs + 2):  # two warm-up rounds
        for name, fn in fns.items():
            start = clock()
            fn()
            if i >= 2:
                times[name].append(clock() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def flat(outputs) -> list:
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights to load (random weights without)')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='input size the backbone sees (after resizing and padding)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = Config.fromfile(args.config)
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model).to(args.device).eval()
    if args.checkpoint:
        try:  # one line for a file that is not a checkpoint or that safe loading refuses
            path = local_checkpoint(args.checkpoint)
            with reading(path):
                load_checkpoint(model, path, map_location='cpu')
        except (OSError, NotACheckpointError, UnsafeCheckpointError) as err:
            raise SystemExit(f'error: {err}') from None
    folded = fold_position_bias(copy.deepcopy(model), [tuple(args.shape)])

    x = torch.randn(args.batch, 3, *args.shape, device=args.device)
    # GPU: wall time. CPU: the process's CPU time, which other processes on a shared machine
    # do not inflate.
    cuda = args.device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time
    with torch.no_grad():
        diff = max((a - b).abs().max().item()
                   for a, b in zip(flat(folded.extract_feat(x)), flat(model.extract_feat(x))))
        times = median_seconds({name: lambda m=m: (m.extract_feat(x), sync())
                                for name, m in (('DPB', model), ('folded', folded))},
                               args.runs, clock)
    print(f'{args.config} at {args.batch}x3x{args.shape[0]}x{args.shape[1]} on {args.device} '
          f'({torch.get_num_threads()} threads): max |folded - DPB| = {diff:.2e}')
    print(f'{"wall" if cuda else "CPU"} time per forward: DPB {times["DPB"] * 1e3:.1f} ms, '
          f'folded {times["folded"] * 1e3:.1f} ms, speed-up {times["DPB"] / times["folded"]:.3f}x')


if __name__ == '__main__':
    main()
