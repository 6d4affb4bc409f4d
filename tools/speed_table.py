"""The speed table of docs/benchmark.md: each setting against eager float32, one process a pair.

    python tools/speed_table.py [--threads 2] [--runs 5] [--shapes 224 224 800 1216]

For each backbone (CrossFormer-S with the dense G / I, and mmdet's Swin-T, what a user would
pick instead) and input, runs ``tools/benchmark.py TARGET --compare fp32 SETTING --modes infer``
in a fresh process for SETTING in bf16, compile, compile+bf16, freeze, freeze+bf16 and ort, and
the matmul peak the same way (``matmul``, an N x N by N x N fp32 and bf16 product, N =
``--matmul-size``). Prints a markdown table: medians, each setting's speed against the float32
runs of its own process (median of run-by-run ratios), and multiply-adds per second as a share
of the matmul peak of the same dtype.
"""
import argparse
import multiprocessing as mp
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

TARGETS = {
    'CrossFormer-S': ['s', '--group-size', '14', '14', '7', '7', '--interval', '16', '8', '2',
                      '1'],
    'Swin-T (mmdet)': ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'],
}
SETTINGS = ('bf16', 'compile', 'compile+bf16', 'freeze', 'freeze+bf16', 'ort')


def run_pair(argv: List[str]) -> Tuple[Dict[str, List[float]], int]:
    """In a fresh process: ``benchmark.py`` with ``argv``; its inference times and the
    multiply-adds of one step."""
    import benchmark
    args = benchmark.parse_args(argv)
    results = benchmark.main(argv)
    _, x, base = benchmark.prepare(args)
    return results['infer'], benchmark.multiply_adds(base, x)


def pair(argv: List[str]) -> Tuple[Dict[str, List[float]], int]:
    with mp.get_context('spawn').Pool(1) as pool:
        return pool.apply(run_pair, (argv, ))


def row(name: str, shape: str, setting: str, times: List[float], fp32: List[float],
        macs: int, peak: Dict[str, float]) -> str:
    ms = statistics.median(times) * 1e3
    speed = statistics.median(b / a for a, b in zip(times, fp32))
    rate = macs / statistics.median(times) / 1e9
    dtype = 'bf16' if 'bf16' in setting else 'fp32'
    return (f'| {name} | {shape} | {setting} | {ms:.0f} | {statistics.median(fp32) * 1e3:.0f} '
            f'| {speed:.2f}x | {rate:.1f} | {rate / peak[dtype]:.0%} of {dtype} |')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--shapes', type=int, nargs='+', default=[224, 224, 800, 1216],
                        help='H W pairs')
    parser.add_argument('--targets', nargs='+', choices=sorted(TARGETS), default=list(TARGETS))
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS))
    parser.add_argument('--matmul-size', type=int, default=2048,
                        help='N of the N x N x N matmul of the peak (smaller where a dtype is '
                        'emulated: a CPU without bf16 instructions takes minutes at 2048)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    common = ['--threads', str(args.threads), '--runs', str(args.runs), '--warmup',
              str(args.warmup), '--modes', 'infer']
    n = str(args.matmul_size)
    times, macs = pair(['matmul', '--shape', n, n, '--compare', 'fp32', 'bf16', *common])
    peak = {name: macs / statistics.median(values) / 1e9 for name, values in times.items()}
    lines = ['| backbone | input | setting | ms | fp32 ms (same process) | speed | GMAC/s | '
             'share of the matmul peak |', '|---|---|---|---|---|---|---|---|',
             *(f'| matmul {n}^3 | - | {dtype} | {statistics.median(times[dtype]) * 1e3:.0f} '
               f'| | | {peak[dtype]:.1f} | 100% |' for dtype in ('fp32', 'bf16'))]
    shapes = list(zip(args.shapes[::2], args.shapes[1::2]))
    for name in args.targets:
        for h, w in shapes:
            for setting in args.settings:
                times, macs = pair([*TARGETS[name], '--shape', str(h), str(w), '--compare',
                                    'fp32', setting, *common])
                lines.append(row(name, f'{h} x {w}', setting, times[setting], times['fp32'],
                                 macs, peak))
                print(lines[-1], flush=True)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
