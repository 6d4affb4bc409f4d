"""tools/speed_table.py and the benchmark settings it uses: ort, matmul, multiply-adds."""
import argparse

import pytest
import torch

import benchmark
import speed_table
from crossformer_mm import CrossFormer

TINY = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], group_size=4,
            interval=[4, 2, 1, 1], with_acl=False)


def test_ort_setting():
    assert benchmark.parse_setting('ort') == benchmark.Setting('ort', ort=True)
    with pytest.raises(argparse.ArgumentTypeError, match='ort runs the exported float32 model'):
        benchmark.parse_setting('ort+bf16')


class TrainReturnsNone(CrossFormer):
    """A backbone whose ``train()`` returns None, as mmdet's Swin's does."""

    def train(self, mode: bool = True) -> None:
        super().train(mode)


def test_ort_step_runs_the_exported_backbone():
    pytest.importorskip('onnxruntime')
    model = TrainReturnsNone(TINY)
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    outs = benchmark.make_step(model, benchmark.parse_setting('ort'), 'infer', x)()
    with torch.no_grad():
        refs = model(x)
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-4)


def test_multiply_adds():
    matmul = benchmark.build_backbone('matmul', None, None, (8, 32))
    x = torch.randn(2, 1, 8, 32)
    assert matmul(x)[0].shape == x.shape and benchmark.multiply_adds(matmul, x) == 2 * 8 * 32 * 32
    model = CrossFormer(TINY)
    one = benchmark.multiply_adds(model, torch.randn(1, 3, 64, 64))
    assert one > 0 and benchmark.multiply_adds(model, torch.randn(2, 3, 64, 64)) == 2 * one


def test_row():
    # 10 GMAC in 100 ms (fp32 runs: 200 ms) against a 200 GMAC/s fp32 peak.
    line = speed_table.row('X', '224 x 224', 'compile', [0.1, 0.1, 0.1], [0.2, 0.2, 0.2],
                           10**10, {'fp32': 200., 'bf16': 400.})
    assert line == '| X | 224 x 224 | compile | 100 | 200 | 2.00x | 100.0 | 50% of fp32 |'


def test_main_measures_the_peak_at_matmul_size(monkeypatch, capsys):
    """The peak's matmul is --matmul-size cubed; each row is its own pair of settings."""
    calls = []

    def pair(argv):
        calls.append(argv)
        a, b = argv[argv.index('--compare') + 1:][:2]
        return {a: [0.2], b: [0.1]}, 10**9
    monkeypatch.setattr(speed_table, 'pair', pair)
    speed_table.main(['--matmul-size', '512', '--targets', 'CrossFormer-S', '--shapes', '224',
                      '224', '--settings', 'compile', '--runs', '1'])
    assert calls[0][:4] == ['matmul', '--shape', '512', '512']
    assert calls[1][calls[1].index('--compare'):][:3] == ['--compare', 'fp32', 'compile']
    lines = capsys.readouterr().out.splitlines()
    assert '| matmul 512^3 | - | fp32 | 200 | | | 5.0 | 100% |' in lines
    assert '| CrossFormer-S | 224 x 224 | compile | 100 | 200 | 2.00x | 10.0 | 200% of fp32 |' \
        in lines


def test_a_toolbox_config_target_builds_its_backbone():
    """The table's other row, mmdet's Swin-T, named the way mmengine finds a toolbox's config."""
    from mmdet.models.backbones import SwinTransformer
    swin = benchmark.build_backbone(speed_table.TARGETS['Swin-T (mmdet)'][0], None, None,
                                    (224, 224))
    assert isinstance(swin, SwinTransformer) and len(swin.stages) == 4
