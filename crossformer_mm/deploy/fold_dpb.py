"""Folding every dynamic position bias (DPB) into fixed relative position bias tables.

A DPB is an MLP of the relative offsets inside a group, so for a fixed group shape its output is
a constant (heads, offsets) table: exactly a relative position bias (RPB) table. This is the
paper's DPB == RPB equivalence (CrossFormer, sec. 3.2.2). Once the input size is fixed, the group
shapes are too, and :func:`fold_position_bias` replaces each DPB by the biases it produces for
those shapes, which removes the MLP (four linear layers, three LayerNorms) from every block::

    from crossformer_mm.deploy import fold_position_bias
    model = fold_position_bias(model, input_sizes=[(224, 224)])   # in place, also returned

``model`` is a CrossFormer or any model holding them (an mmpretrain classifier, an mmdet
detector, an mmseg segmentor); sizes are those the backbone sees, i.e. after resizing and
padding. A folded model refuses an input whose groups it has no table for, rather than computing
a wrong bias. ``tools/fold_dpb.py`` checks a folded model against the original and times both.
"""
from typing import Dict, Iterable, List, Sequence, Tuple, Union
from unittest import mock

import torch
from torch import Tensor, nn

from ..models.backbones import captured as captured_module
from ..models.backbones.crossformer import CrossFormer, DynamicPositionBias
from ..models.backbones.grouping import Grouping

Size = Tuple[int, int]


class FoldedPositionBias(nn.Module):
    """A DPB frozen into one (heads, offsets) table per group shape (``table_{gh}x{gw}``), and
    per group shape of the padded groups that a captured graph (ONNX export) uses
    (``table_padded_{gh}x{gw}``), which a CPU graph of symbolic sizes
    (:class:`~..models.backbones.captured.RuntimeGrouping`) takes too."""

    def __init__(self, biases: Dict[Size, Tensor], input_sizes: Sequence[Size],
                 padded: Dict[Size, Tensor] = None) -> None:
        super().__init__()
        self.group_shapes = sorted(biases)
        self.input_sizes = list(input_sizes)
        for (gh, gw), table in biases.items():
            self.register_buffer(f'table_{gh}x{gw}', table.detach().contiguous())
        for (gh, gw), table in (padded or {}).items():
            self.register_buffer(f'table_padded_{gh}x{gw}', table.detach().contiguous())

    def forward(self, grouping: Grouping) -> Tensor:
        gh, gw = grouping.group_shape
        eager = isinstance(grouping, Grouping)
        table = getattr(self, f'table_{gh}x{gw}' if eager else f'table_padded_{gh}x{gw}', None)
        if table is None:
            where = (f'a {grouping.height}x{grouping.width} map makes {gh}x{gw} groups' if eager
                     else f'a captured graph makes padded {gh}x{gw} groups')
            raise ValueError(
                f'This CrossFormer\'s position bias was folded for inputs of '
                f'{self.input_sizes}, whose groups are {self.group_shapes} tokens; {where}. '
                f'Fold the unfolded model for this input size too (fold_position_bias(model, '
                f'input_sizes=[...])).')
        return table

    def extra_repr(self) -> str:
        return f'group_shapes={self.group_shapes}'


def _sizes(input_sizes: Union[int, Size, Iterable[Size]]) -> List[Size]:
    if isinstance(input_sizes, int):
        input_sizes = [(input_sizes, input_sizes)]
    elif len(input_sizes) == 2 and all(isinstance(s, int) for s in input_sizes):
        input_sizes = [tuple(input_sizes)]
    sizes = [tuple(size) for size in input_sizes]
    if not sizes or any(len(s) != 2 or not all(isinstance(v, int) and v >= 32 for v in s)
                        for s in sizes):
        raise ValueError(f'input_sizes must be (H, W) pairs of integers >= 32, got '
                         f'{input_sizes}')
    return sizes


@torch.no_grad()
def _record_biases(backbone: CrossFormer, sizes: List[Size],
                   captured: bool = False) -> Dict[str, Dict[Size, Tensor]]:
    """Run the backbone once per size and keep what every DPB returns, per group shape;
    ``captured``: over the padded groups that a captured graph uses."""
    dpbs = {name: m for name, m in backbone.named_modules()
            if isinstance(m, DynamicPositionBias)}
    biases: Dict[str, Dict[Size, Tensor]] = {name: {} for name in dpbs}

    def recorder(name):
        def hook(module, args, output):
            biases[name].setdefault(args[0].group_shape, output.clone())
        return hook

    handles = [m.register_forward_hook(recorder(name)) for name, m in dpbs.items()]
    was_training = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters())
        with mock.patch.object(captured_module, 'capturing', lambda: captured):
            for h, w in sizes:
                backbone(param.new_zeros(1, backbone.in_channels, h, w))
    finally:
        backbone.train(was_training)
        for handle in handles:
            handle.remove()
    return biases


def fold_position_bias(model: nn.Module,
                       input_sizes: Union[int, Size, Iterable[Size]]) -> nn.Module:
    """Replace each DPB of each CrossFormer in ``model`` by its biases for ``input_sizes``.

    Outputs stay the same for inputs of those sizes (the biases are what the DPBs computed),
    other sizes raise. Works in place and returns ``model``.
    """
    sizes = _sizes(input_sizes)
    backbones = [m for m in model.modules() if isinstance(m, CrossFormer)]
    if not backbones:
        raise ValueError(f'{type(model).__name__} holds no CrossFormer backbone to fold')
    for backbone in backbones:
        if any(isinstance(m, FoldedPositionBias) for m in backbone.modules()):
            raise ValueError('This CrossFormer is already folded; fold the original model '
                             'with every input size it must serve')
        padded = _record_biases(backbone, sizes, captured=True)
        for name, biases in _record_biases(backbone, sizes).items():
            parent, child = name.rsplit('.', 1)
            setattr(backbone.get_submodule(parent), child,
                    FoldedPositionBias(biases, sizes, padded[name]))
    return model
