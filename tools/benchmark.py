"""Speed and memory of a CrossFormer backbone, alone or two settings side by side.

Measures inference latency and throughput, the time of one training step (forward, backward and
a plain SGD update) and peak memory, after warm-up, over repeated runs; prints median and spread.
``--compare A B`` runs two settings in one process, alternating A and B run by run so that both
see the same load, and prints their ratios (the median of the run-by-run ratios).

A setting is a ``+``-joined list of tokens:

* ``production`` (default) or ``oracle``: the backbone, or the plain reference implementation of
  :mod:`crossformer_mm.testing.oracle` with the same weights;
* ``fp32`` (default), ``bf16`` or ``fp16``: autocast dtype;
* ``eager`` (default) or ``compile``: ``torch.compile`` the model (compiled in the warm-up);
* ``dynamic``: ``torch.compile(dynamic=True)`` (implies ``compile``): the graph of symbolic
  sizes that serves every input size (what a default compile turns to from the second input
  size on; on CPU it groups tokens when it runs, inside ops, on CUDA it takes the padded
  formulation; see docs/deploy.md);
* ``freeze``: inference compiled with inductor's ``freezing`` (implies ``compile``): the weights
  become constants of the graph, folded and prepacked for the CPU's matmul kernels, so such a
  graph is for a model whose weights no longer change;
* ``cp``: activation checkpointing (``with_cp=True``);
* ``ort``: inference in ONNX Runtime (CPU, as many threads as PyTorch) of the model exported
  with the legacy exporter at the input's shape.

The target is an arch name, ``matmul`` (``x @ w`` for an H x W input ``x`` and a W x W ``w``:
the machine's matmul peak, measured the same way) or a config, whose ``model.backbone`` is
built in the config's scope: this package's, or another backbone's to compare with, e.g.
``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``. Times come with the multiply-adds per
second (the backbone's counted as in ``tools/get_flops.py``).

Peak memory is the memory a step adds on top of the model and its input. On CUDA it is
``torch.cuda.max_memory_allocated`` above the level before the step. On CPU every measurement
runs in a fresh process: the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) during one step, minus the resident set before it.

Examples::

    # CrossFormer-S, dense-task G/I, production vs. oracle at 800 x 1216 on 2 CPU threads
    python tools/benchmark.py s --shape 800 1216 --group-size 14 14 7 7 \\
        --interval 16 8 2 1 --threads 2 --warmup 1 --runs 5 --compare production oracle
    # bf16 autocast or torch.compile against fp32 eager, inference only
    python tools/benchmark.py s --shape 224 224 --modes infer --compare fp32 bf16
    python tools/benchmark.py configs/some_config.py --modes infer --compare eager compile
"""
import argparse
import copy
import gc
import multiprocessing as mp
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from crossformer_mm import CrossFormer
from crossformer_mm.testing import OracleCrossFormer

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
MODES = ('infer', 'train', 'memory')


@dataclass(frozen=True)
class Setting:
    """One way of running the backbone."""
    name: str
    oracle: bool = False
    dtype: Optional[torch.dtype] = None
    compile: bool = False
    dynamic: bool = False
    freeze: bool = False
    with_cp: bool = False
    ort: bool = False


def parse_setting(text: str) -> Setting:
    """``'oracle+bf16'`` -> Setting(oracle=True, dtype=torch.bfloat16)."""
    fields = dict(name=text)
    for token in text.split('+'):
        if token in ('production', 'oracle'):
            fields['oracle'] = token == 'oracle'
        elif token in DTYPES:
            fields['dtype'] = DTYPES[token]
        elif token in ('eager', 'compile'):
            fields['compile'] = token == 'compile'
        elif token in ('dynamic', 'freeze'):
            fields[token] = True
        elif token in ('cp', 'ort'):
            fields['with_cp' if token == 'cp' else 'ort'] = True
        else:
            raise argparse.ArgumentTypeError(
                f'unknown setting token {token!r}; use production|oracle, fp32|bf16|fp16, '
                'eager|compile, dynamic, freeze, cp, ort, joined by +')
    fields['compile'] = any(fields.get(key, False) for key in ('compile', 'dynamic', 'freeze'))
    setting = Setting(**fields)
    if setting.ort and (setting.oracle or setting.dtype or setting.compile or setting.with_cp):
        raise argparse.ArgumentTypeError(f'{text}: ort runs the exported float32 model only')
    return setting


class MatMul(nn.Module):
    """``x @ weight`` for (..., H, W) ``x`` and a (W, W) ``weight``: the matmul peak."""
    in_channels = 1

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, width) / width**0.5)

    def forward(self, x: torch.Tensor) -> tuple:
        return (x @ self.weight, )


def build_backbone(target: str, group_size: Optional[List[int]],
                   interval: Optional[List[int]], shape: Sequence[int]) -> nn.Module:
    """An arch name (``'s'``, ``'pp-b'``, ...), ``matmul`` (for an input of ``shape``) or a
    config's ``model.backbone`` (a path, or ``'mmdet::...'``) in the config's scope, random
    weights."""
    overrides = {k: v for k, v in dict(group_size=group_size, interval=interval).items() if v}
    if target == 'matmul':
        return MatMul(shape[-1])
    if not target.endswith('.py'):
        return CrossFormer(target, **overrides)
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import MODELS, DefaultScope, init_default_scope
    # A toolbox's own config ('mmdet::swin/...py') through mmengine's package lookup.
    cfg = get_config(target) if '::' in target else Config.fromfile(target)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    backbone = cfg.model.backbone
    backbone.pop('init_cfg', None)  # benchmark random weights; a checkpoint changes nothing
    backbone.update(overrides)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(backbone)


def multiply_adds(base: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward of ``base`` on ``x``."""
    if isinstance(base, MatMul):
        return x.numel() * base.weight.shape[1]
    from crossformer_mm.analysis import count_complexity
    return count_complexity(base, tuple(x.shape[1:])).flops * x.shape[0]


def ort_step(module: nn.Module, x: torch.Tensor) -> Callable:
    """Inference of ``module`` exported with the legacy exporter at ``x``'s shape, in ONNX
    Runtime (CPU)."""
    import os.path as osp
    import tempfile
    import warnings

    from crossformer_mm.deploy.export import _ort_session
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer's notes on the export, not the timing
        path = osp.join(tmp, 'model.onnx')
        module.eval()  # not chained: some backbones' train() returns None (mmdet's Swin)
        torch.onnx.export(module, (x.cpu(), ), path, dynamo=False, input_names=['input'],
                          opset_version=17)
        session = _ort_session(path)
    feed = {'input': x.cpu().numpy()}
    return lambda: session.run(None, feed)


def make_step(base: CrossFormer, setting: Setting, mode: str, x: torch.Tensor) -> Callable:
    """A function running one inference or training step of ``setting`` on a copy of ``base``."""
    model = copy.deepcopy(base)
    if setting.with_cp:
        for stage in model.stages:
            stage.with_cp = True
    module: nn.Module = OracleCrossFormer(model) if setting.oracle else model
    if setting.ort:
        if mode != 'infer':
            raise ValueError(f'{setting.name}: ONNX Runtime runs inference only')
        return ort_step(module, x)
    module.train(mode == 'train')
    if setting.freeze and mode != 'infer':
        raise ValueError(f'{setting.name}: freeze compiles inference only (the weights become '
                         'constants of the graph)')
    if setting.compile:
        module = torch.compile(module, dynamic=True if setting.dynamic else None,
                               options={'freezing': True} if setting.freeze else None)
    autocast = torch.autocast(x.device.type, dtype=setting.dtype,
                              enabled=setting.dtype is not None)

    if mode == 'infer':
        def step() -> None:
            with torch.no_grad(), autocast:
                module(x)
        return step

    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def step() -> None:
        with autocast:
            loss = sum(out.float().mean() for out in module(x))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable, device: torch.device) -> float:
    """Seconds one call of ``step`` takes."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def progress(text: str, done: bool = False) -> None:
    """One progress line on stderr, rewritten in place on a terminal."""
    if sys.stderr.isatty():
        print(f'\r\033[K{text}', end='\n' if done else '', file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


def time_settings(steps: Dict[str, Callable], device: torch.device, warmup: int, runs: int,
                  label: str) -> Dict[str, List[float]]:
    """Warm every step up, then time them alternately, ``runs`` times each."""
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for name, step in steps.items():
        for i in range(warmup):
            progress(f'[{label}] warm-up {name} {i + 1}/{warmup}')
            timed(step, device)
    for i in range(runs):
        for name, step in steps.items():
            times[name].append(timed(step, device))
            progress(f'[{label}] run {i + 1}/{runs} {name}: {times[name][-1] * 1e3:.1f} ms')
    progress(f'[{label}] done', done=True)
    return times


def _rss_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def peak_memory(step: Callable, device: torch.device) -> float:
    """Bytes of memory one call of ``step`` adds at its peak (see the module docstring)."""
    gc.collect()
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current resident set (Linux >= 4.0)
    base = _rss_kib('VmRSS')
    step()
    return float(_rss_kib('VmHWM') - base) * 1024


def _memory_child(args: argparse.Namespace, setting: Setting, mode: str) -> float:
    """Runs in a fresh process: build, warm up only what must be (compile), measure."""
    torch.set_num_threads(args.threads)
    device, x, base = prepare(args)
    step = make_step(base, setting, mode, x)
    if setting.compile:
        step()
    return peak_memory(step, device)


def measure_memory(args: argparse.Namespace, settings: Sequence[Setting], mode: str,
                   device: torch.device, base: CrossFormer,
                   x: torch.Tensor) -> Dict[str, List[float]]:
    """Peak memory of each setting, alternating, ``args.memory_runs`` times."""
    peaks: Dict[str, List[float]] = {s.name: [] for s in settings}
    for i in range(args.memory_runs):
        for setting in settings:
            progress(f'[memory {mode}] run {i + 1}/{args.memory_runs} {setting.name}')
            if device.type == 'cuda':
                step = make_step(base, setting, mode, x)
                step()  # warm-up: the caching allocator's statistics count live tensors only
                peaks[setting.name].append(peak_memory(step, device))
                del step
            else:
                with mp.get_context('spawn').Pool(1) as pool:
                    peaks[setting.name].append(
                        pool.apply(_memory_child, (args, setting, mode)))
    progress(f'[memory {mode}] done', done=True)
    return peaks


def prepare(args: argparse.Namespace):
    """The device, a random input batch and the backbone (random weights, eval mode)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = build_backbone(args.target, args.group_size, args.interval, args.shape).to(device)
    x = torch.randn(args.batch_size, getattr(base, 'in_channels', 3), *args.shape, device=device)
    return device, x, base


def spread(values: List[float]) -> str:
    med = statistics.median(values)
    return f'{min(values):.4g}-{max(values):.4g} (+-{(max(values) - min(values)) / 2 / med:.0%})'


def report(results: Dict[str, Dict[str, List[float]]], batch_size: int,
           macs: Optional[int] = None) -> None:
    """Median and spread of every metric and setting (and inference's multiply-adds per second
    for ``macs`` per step), then the ratios of A to B."""
    units = {'infer': ('inference', 1e3, 'ms'), 'train': ('train step', 1e3, 'ms'),
             'memory infer': ('peak mem inference', 2**-20, 'MiB'),
             'memory train': ('peak mem train step', 2**-20, 'MiB')}
    print(f'{"metric":<25}{"setting":<22}{"median":>12}  spread (min-max)')
    for key, by_setting in results.items():
        label, scale, unit = units[key]
        for name, values in by_setting.items():
            scaled = [v * scale for v in values]
            line = f'{label + " " + unit:<25}{name:<22}{statistics.median(scaled):>12.1f}  '
            line += spread(scaled)
            if key == 'infer':
                line += f'  {batch_size / statistics.median(values):.3g} img/s'
                if macs:
                    line += f', {macs / statistics.median(values) / 1e9:.1f} GMAC/s'
            print(line)
    names = list(next(iter(results.values())))
    if len(names) != 2:
        return
    a, b = names
    print(f'\nratios {a} / {b} (median of run-by-run ratios):')
    for key, by_setting in results.items():
        ratios = [va / vb for va, vb in zip(by_setting[a], by_setting[b]) if vb > 0]
        if not ratios:
            continue
        ratio = statistics.median(ratios)
        speed = f'  ({a} runs at {1 / ratio:.2f}x the speed of {b})'
        print(f'  {units[key][0]:<22}{ratio:.3f}{"" if key.startswith("memory") else speed}')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('target', help="an arch name ('s', 'pp-b', ...), matmul or a config")
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--group-size', type=int, nargs='+', help='per-stage G override')
    parser.add_argument('--interval', type=int, nargs='+', help='per-stage I override')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--memory-runs', type=int, default=1)
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--setting', type=parse_setting, default=parse_setting('production'))
    group.add_argument('--compare', type=parse_setting, nargs=2, metavar=('A', 'B'))
    args = parser.parse_args(argv)
    for key in ('group_size', 'interval'):
        value = getattr(args, key)
        if value is not None and len(value) == 1:
            setattr(args, key, value[0])
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, List[float]]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device, x, base = prepare(args)
    settings = args.compare or [args.setting]
    macs = multiply_adds(base, x)
    grouping = (f'G {base.group_size}, I {base.interval}, ' if isinstance(base, CrossFormer)
                else '')
    print(f'{type(base).__name__} {args.target}: input {tuple(x.shape)}, {device}, '
          f'{torch.get_num_threads()} threads, {grouping}{macs / 1e9:.2f} GMAC, '
          f'warm-up {args.warmup}, runs {args.runs}')
    results: Dict[str, Dict[str, List[float]]] = {}
    for mode in ('infer', 'train'):
        if mode in args.modes:
            steps = {s.name: make_step(base, s, mode, x) for s in settings}
            results[mode] = time_settings(steps, device, args.warmup, args.runs, mode)
            del steps
    if 'memory' in args.modes:
        for mode in ('infer', 'train'):
            results[f'memory {mode}'] = measure_memory(args, settings, mode, device, base, x)
    report(results, args.batch_size, macs)
    return results


if __name__ == '__main__':
    main()
