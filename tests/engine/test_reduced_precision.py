"""compute_layers_in and ReducedPrecisionHook: each convolution and linear layer outside the
backbone computes in the dtype and hands on its input's dtype; nothing else changes."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from crossformer_mm.engine import ReducedPrecisionHook, compute_layers_in
from crossformer_mm.engine import reduced_precision


class Tiny(nn.Module):
    """A backbone, a conv neck with a norm, a linear head with a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3)
        self.neck = nn.Sequential(nn.Conv2d(8, 8, 3), nn.GroupNorm(2, 8))
        self.head = nn.ModuleDict(dict(up=nn.ConvTranspose2d(8, 4, 2, 2), fc=nn.Linear(4, 5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.neck(self.backbone(x))
        return self.head.fc(self.head.up(x).mean((2, 3)))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Tiny()


def outputs(model: nn.Module, x: torch.Tensor) -> dict:
    """Each submodule's output dtype, from hooks registered before compute_layers_in's."""
    seen = {}
    for name, module in model.named_modules():
        module.register_forward_hook(
            lambda m, a, out, name=name: seen.setdefault(name, out.dtype) and None)
    return seen


def by_hand(model: Tiny, x: torch.Tensor) -> torch.Tensor:
    """What compute_layers_in should compute: each layer but the backbone under autocast."""
    def low(layer, t):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return layer(t).float()
    x = model.neck[1](low(model.neck[0], model.backbone(x)))
    return low(model.head.fc, low(model.head.up, x).mean((2, 3)))


def test_layers_compute_in_the_dtype_and_hand_on_float32(model):
    x = torch.randn(2, 3, 12, 12)
    ref, expected = model(x), by_hand(model, x)
    raw = outputs(model, x)
    assert compute_layers_in(model, 'bf16') == 3   # neck conv, transposed conv, linear
    out = model(x)
    assert raw == {'backbone': torch.float32, 'neck.0': torch.bfloat16, 'neck.1': torch.float32,
                   'neck': torch.float32, 'head.up': torch.bfloat16, 'head.fc': torch.bfloat16,
                   '': torch.float32}
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert 0 < (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert not torch.is_autocast_enabled('cpu')
    out.sum().backward()   # gradients reach the parameters in float32
    assert model.head.fc.weight.grad.dtype == torch.float32


def test_skip_again_and_float32(model):
    assert compute_layers_in(model, 'fp32') == 0
    assert compute_layers_in(model, 'bf16', skip=('backbone', 'head')) == 1
    assert compute_layers_in(model, torch.bfloat16, skip=()) == 3  # the others; neck.0 was done
    assert model.backbone.compute_dtype == model.neck[0].compute_dtype == torch.bfloat16


def test_skip_at_any_depth(model):
    wrapper = nn.ModuleDict(dict(module=model))   # as a TTA model holds the detector
    assert compute_layers_in(wrapper, 'bf16') == 3
    assert not hasattr(model.backbone, 'compute_dtype')


def test_a_layer_that_raises_leaves_autocast_off(model):
    compute_layers_in(model, 'bf16')
    with pytest.raises(RuntimeError):
        model.head.fc(torch.randn(2, 7))   # wrong width
    assert not torch.is_autocast_enabled('cpu') and reduced_precision._running.stack == []


def test_hook(model):
    with pytest.raises(ValueError, match="^ReducedPrecisionHook needs a reduced dtype, got "
                       "'fp32'$"):
        ReducedPrecisionHook('fp32')
    with pytest.raises(ValueError, match='^compute_dtype must be one of'):
        ReducedPrecisionHook('int8')
    ReducedPrecisionHook('bf16').before_run(SimpleNamespace(model=model))
    assert model.head.fc.compute_dtype == torch.bfloat16
    assert not hasattr(model.backbone, 'compute_dtype')
