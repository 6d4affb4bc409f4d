"""tools/benchmark.py on tiny inputs: settings, alternating timing, ratios, peak memory."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / 'tools'))
import benchmark  # noqa: E402


def test_parse_setting():
    setting = benchmark.parse_setting('oracle+bf16+compile+cp')
    assert setting == benchmark.Setting('oracle+bf16+compile+cp', oracle=True,
                                        dtype=torch.bfloat16, compile=True, with_cp=True)
    assert benchmark.parse_setting('production') == benchmark.Setting('production')
    with pytest.raises(Exception, match='unknown setting token'):
        benchmark.parse_setting('fp32+fast')


def test_compare_alternates_and_prints_ratios(capsys):
    results = benchmark.main(['t', '--shape', '64', '64', '--threads', '1', '--modes', 'infer',
                              'train', '--warmup', '0', '--runs', '2', '--compare',
                              'production', 'oracle+bf16'])
    assert list(results) == ['infer', 'train']
    for by_setting in results.values():
        assert list(by_setting) == ['production', 'oracle+bf16']
        assert all(len(times) == 2 and min(times) > 0 for times in by_setting.values())
    out = capsys.readouterr().out
    assert 'ratios production / oracle+bf16' in out
    assert 'train step' in out and 'img/s' in out


def test_peak_memory_sees_a_step_allocation():
    """In a fresh process, as the tool measures: a long-lived one may reuse resident pages."""
    size = 64 * 2**20
    code = ('import sys, torch; sys.path.insert(0, "tools"); import benchmark; '
            f'print(benchmark.peak_memory(lambda: torch.ones({size // 4}), torch.device("cpu")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    peak = float(out.split()[-1])
    assert 0.95 * size < peak < 1.5 * size  # resident pages, give or take the allocator's


def test_memory_mode_runs_in_fresh_processes(capsys):
    results = benchmark.main(['t', '--shape', '64', '64', '--threads', '1', '--modes',
                              'memory'])
    assert list(results) == ['memory infer', 'memory train']
    assert results['memory train']['production'][0] > 0
    assert 'peak mem train step' in capsys.readouterr().out
