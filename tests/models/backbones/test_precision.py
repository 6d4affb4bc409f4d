"""A backbone converted with .half() / .bfloat16() runs forward in every path, close to float32."""
import copy

import pytest
import torch

import crossformer_mm.models.backbones.crossformer as cf_module
from crossformer_mm import CrossFormer

ARCH = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], group_size=[4, 4, 3, 3],
            interval=[4, 2, 2, 1], with_acl=True)
#: Largest difference to float32, relative to the output's largest value: the dtype's
#: rounding (fp16: 11 bits of mantissa, bf16: 8) accumulated over the blocks.
TOLERANCE = {torch.float16: 0.01, torch.bfloat16: 0.05}


def model() -> CrossFormer:
    torch.manual_seed(0)
    m = CrossFormer(ARCH, drop_path_rate=0.)
    for p in m.parameters():  # LayerNorms start at 1 / 0: perturb so they count
        p.data.add_(torch.randn_like(p) * 0.02)
    return m


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('path', ['eager', 'captured', 'train', 'train_cp'])
def test_converted_forward_close_to_float32(dtype, path, monkeypatch):
    m = model()
    x = torch.randn(2, 3, 100, 132)       # padded spans; stage 4 (3 x 4) is one whole-map group
    if path == 'captured':
        monkeypatch.setattr(cf_module, 'capturing', lambda: True)
    train = path.startswith('train')
    m.train(train)
    with torch.no_grad():
        refs = m(x)
    low = copy.deepcopy(m).to(dtype)
    if path == 'train_cp':
        for stage in low.stages:
            stage.with_cp = True
    with torch.set_grad_enabled(train):
        outs = low(x.to(dtype))
    if train:
        sum(out.float().sum() for out in outs).backward()
        assert all(p.grad is not None and p.grad.dtype == dtype
                   for p in low.parameters() if p.requires_grad)
    for out, ref in zip(outs, refs):
        assert out.dtype == dtype and out.shape == ref.shape
        err = (out.float() - ref).abs().max() / ref.abs().max()
        assert err < TOLERANCE[dtype], f'{err:.4f}'
