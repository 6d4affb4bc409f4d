"""tools/benchmark.py on tiny inputs: settings, alternating timing, ratios, peak memory."""
import multiprocessing
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from crossformer_mm import CrossFormer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))
import benchmark  # noqa: E402


def test_parse_setting():
    setting = benchmark.parse_setting('oracle+bf16+compile+cp')
    assert setting == benchmark.Setting('oracle+bf16+compile+cp', oracle=True,
                                        dtype=torch.bfloat16, compile=True, with_cp=True)
    assert benchmark.parse_setting('production') == benchmark.Setting('production')
    with pytest.raises(Exception, match='unknown setting token'):
        benchmark.parse_setting('fp32+fast')
    assert benchmark.parse_setting('freeze+bf16') == benchmark.Setting(
        'freeze+bf16', dtype=torch.bfloat16, compile=True, freeze=True)
    assert benchmark.parse_setting('dynamic') == benchmark.Setting('dynamic', compile=True,
                                                                   dynamic=True)


def test_compile_settings_reach_torch_compile(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda module, **kw: compiled.append(kw) or module)
    base, x = benchmark.MatMul(2), torch.ones(1, 1, 2, 2)
    for name in ('compile', 'dynamic', 'freeze'):
        benchmark.make_step(base, benchmark.parse_setting(name), 'infer', x)()
    assert compiled == [dict(dynamic=None, options=None), dict(dynamic=True, options=None),
                        dict(dynamic=None, options={'freezing': True})]
    with pytest.raises(ValueError, match='freeze: freeze compiles inference only'):
        benchmark.make_step(base, benchmark.parse_setting('freeze'), 'train', x)


def test_compare_alternates_the_settings_and_prints_their_ratios(monkeypatch, capsys):
    """Warm-ups first, then A, B, A, B; each time is one step's, and the ratios are the medians
    of the run-by-run ratios (steps and clock stand-ins, so the figures are exact)."""
    clock, calls = [0.], []
    seconds = {('infer', 'production'): 2**-8, ('infer', 'oracle+bf16'): 2**-9,
               ('train', 'production'): 2**-7, ('train', 'oracle+bf16'): 2**-5}

    def make_step(base, setting, mode, x):
        assert (tuple(x.shape), setting) == ((1, 3, 64, 64), benchmark.parse_setting(setting.name))

        def step():
            calls.append((mode, setting.name))
            clock[0] += seconds[mode, setting.name]
        return step

    monkeypatch.setattr(benchmark, 'make_step', make_step)
    monkeypatch.setattr(benchmark, 'time', SimpleNamespace(perf_counter=lambda: clock[0]))
    results = benchmark.main(['t', '--shape', '64', '64', '--threads', '1', '--modes', 'infer',
                              'train', '--warmup', '1', '--runs', '2', '--compare',
                              'production', 'oracle+bf16'])
    assert calls == [(mode, name) for mode in ('infer', 'train')
                     for name in ['production', 'oracle+bf16'] * 3]
    assert results == {mode: {name: [seconds[mode, name]] * 2
                              for name in ('production', 'oracle+bf16')}
                       for mode in ('infer', 'train')}
    out = capsys.readouterr().out
    assert re.search(r'\ninference ms +production +3\.9  3\.906-3\.906 \(\+-0%\)  256 img/s', out)
    assert 'ratios production / oracle+bf16 (median of run-by-run ratios):' in out
    assert 'inference             2.000  (production runs at 0.50x the speed of oracle+bf16)' in out
    assert 'train step            0.250  (production runs at 4.00x the speed of oracle+bf16)' in out


def test_a_config_as_the_target_builds_its_backbone():
    """Its model.backbone with random weights (the ImageNet checkpoint is not loaded), G and I
    overridden by the options."""
    config = str(ROOT / 'configs' / 'mask_rcnn_crossformer_s_1x.py')
    backbone = benchmark.build_backbone(config, None, None, (64, 64))
    assert type(backbone) is CrossFormer and backbone.init_cfg is None
    assert (backbone.embed_dims, backbone.depths, backbone.group_size, backbone.interval) == (
        96, [2, 2, 6, 2], [7, 7, 7, 7], [8, 4, 2, 1])
    dense = benchmark.build_backbone(config, [14, 14, 7, 7], 16, (64, 64))
    assert (dense.group_size, dense.interval) == ([14, 14, 7, 7], [16, 16, 16, 16])


def test_peak_memory_sees_a_step_allocation():
    """In a fresh process, as the tool measures: a long-lived one may reuse resident pages."""
    size = 64 * 2**20
    code = ('import sys, torch; sys.path.insert(0, "tools"); import benchmark; '
            f'print(benchmark.peak_memory(lambda: torch.ones({size // 4}), torch.device("cpu")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    peak = float(out.split()[-1])
    assert 0.95 * size < peak < 1.5 * size  # resident pages, give or take the allocator's


def test_memory_mode_measures_each_setting_and_mode_in_a_spawned_process(monkeypatch, capsys):
    """On CPU each measurement is one call of _memory_child in a new 'spawn' pool of one
    process (a stand-in pool records them); the report prints the figures it returns in MiB."""
    spawned = []

    class Pool:

        def __init__(self, method, processes):
            self.method, self.processes = method, processes

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def apply(self, fn, args):
            spawned.append((self.method, self.processes, fn, args[1].name, args[2]))
            return {'infer': 2.5, 'train': 3.}[args[2]] * 2**20 * (1 + len(spawned))

    monkeypatch.setattr(benchmark, 'mp', SimpleNamespace(
        get_context=lambda method: SimpleNamespace(Pool=lambda n: Pool(method, n))))
    results = benchmark.main(['t', '--shape', '64', '64', '--modes', 'memory', '--compare',
                              'production', 'oracle', '--memory-runs', '2'])
    child = benchmark._memory_child
    assert spawned == [('spawn', 1, child, name, mode) for mode in ('infer', 'train')
                       for name in ('production', 'oracle') * 2]
    assert results == {'memory infer': {'production': [5 * 2**20, 10 * 2**20],
                                        'oracle': [7.5 * 2**20, 12.5 * 2**20]},
                       'memory train': {'production': [18 * 2**20, 24 * 2**20],
                                        'oracle': [21 * 2**20, 27 * 2**20]}}
    out = capsys.readouterr().out
    assert re.search(r'\npeak mem train step MiB +production +21\.0  18-24 \(\+-14%\)\n', out)
    assert 'peak mem train step   0.873' in out  # median of 18 / 21 and 24 / 27


def test_a_train_step_in_a_fresh_process_peaks_above_its_gradients():
    """What the memory mode runs in its spawned process: the train step of CrossFormer-T at
    64 x 64 holds a float32 gradient of every parameter at its peak."""
    args = benchmark.parse_args(['t', '--shape', '64', '64', '--threads', '1'])
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        peak = pool.apply(benchmark._memory_child,
                          (args, benchmark.parse_setting('production'), 'train'))
    assert peak > 4 * sum(p.numel() for p in CrossFormer('t').parameters())
