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


def test_ort_step_runs_the_exported_backbone():
    pytest.importorskip('onnxruntime')
    model = CrossFormer(TINY).eval()
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
