"""Reduced precision beyond the backbone: :func:`compute_layers_in` and
:class:`ReducedPrecisionHook`.

The backbone's ``compute_dtype`` covers the backbone only, and in a detector at 800 x 1216 the
neck and heads take more than half of the time (FPN and RPN convolutions, the RoI heads' layers).
Whole-model autocast (mmengine's ``test_cfg.fp16=True``) would hand mmcv's float32-only CPU ops
(NMS, RoIAlign) bf16 tensors, so here each convolution and linear layer outside the backbone
computes under autocast on its own and returns its input's dtype: every op between the layers
(norms, activations, box decoding, NMS, RoIAlign, losses) sees float32 as before.
"""
import threading
from functools import partial
from typing import List, Sequence, Tuple, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import Tensor, nn

from ..models.backbones.precision import autocast, resolve_dtype

#: The layers that compute in the reduced dtype: convolutions (transposed too) and linear.
LAYERS = (nn.modules.conv._ConvNd, nn.Linear)

class _Running(threading.local):
    """Per thread, (autocast context, input dtype) of the layer running now: layers are leaves,
    so the stack is at most one deep."""

    def __init__(self) -> None:
        self.stack: List[Tuple[torch.autocast, torch.dtype]] = []


_running = _Running()


def _enter(dtype: torch.dtype, module: nn.Module, args: tuple) -> None:
    x = args[0]
    context = autocast(x.device.type, dtype)
    context.__enter__()
    _running.stack.append((context, x.dtype))


def _leave(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    context, dtype = _running.stack.pop()
    context.__exit__(None, None, None)
    return output.to(dtype) if isinstance(output, Tensor) else output  # None: it raised


def compute_layers_in(model: nn.Module, dtype: Union[str, torch.dtype],
                      skip: Sequence[str] = ('backbone', )) -> int:
    """Have every convolution and linear layer of ``model``, outside the submodules named in
    ``skip`` (at any depth), compute in ``dtype`` (``'bf16'``, ``'fp16'``, ...) and return its
    input's dtype.

    For a model already built, e.g. an Inferencer's ``inferencer.model``; configs and the tools
    use :class:`ReducedPrecisionHook`. The CrossFormer backbone is skipped by default: its own
    ``compute_dtype`` keeps whole blocks in the dtype. Returns the number of layers changed;
    layers done before are left as they are.
    """
    dtype = resolve_dtype(dtype) if isinstance(dtype, str) else dtype
    if dtype is None:
        return 0
    changed = 0
    for name, module in model.named_modules():
        skipped = not set(skip).isdisjoint(name.split('.'))  # at any depth: TTA's module.backbone
        if skipped or not isinstance(module, LAYERS) or hasattr(module, 'compute_dtype'):
            continue
        module.compute_dtype = dtype
        module.register_forward_pre_hook(partial(_enter, dtype))
        module.register_forward_hook(_leave, always_call=True)
        changed += 1
    return changed


@HOOKS.register_module()
class ReducedPrecisionHook(Hook):
    """The neck's and heads' convolutions and linear layers compute in ``dtype`` in training,
    validation and test (see :func:`compute_layers_in`); what ``--amp`` of tools/train.py and
    tools/test.py adds, with the backbone's ``compute_dtype``, or a config's ``custom_hooks``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, dtype: str = 'bf16', skip: Sequence[str] = ('backbone', )) -> None:
        if resolve_dtype(dtype) is None:
            raise ValueError(f'ReducedPrecisionHook needs a reduced dtype, got {dtype!r}')
        self.dtype, self.skip = dtype, tuple(skip)

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        compute_layers_in(model, self.dtype, self.skip)
