"""FLOP counting: mmengine's counts plus the attention products, exactly."""
from typing import Iterator, Tuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn

from crossformer_mm import CrossFormer
from crossformer_mm.analysis import count_complexity, parse_input_shape, published_pairs
from crossformer_mm.models.backbones.grouping import Grouping


class _Attention(nn.Module):
    """A linear layer, then attention of 5 queries over 7 keys."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.proj(x)[:, 0, :5].reshape(1, 5, 2, 4).transpose(1, 2)  # (B, heads, N, E)
        k = q.new_ones(1, 2, 7, 4)                            # M = 7
        v = q.new_ones(1, 2, 7, 6)                            # Ev = 6
        return F.scaled_dot_product_attention(q, k, v)


def test_attention_products_are_added_to_mmengine_counts():
    model = _Attention()
    params, flops, _ = count_complexity(model, (8, 4))  # input (1, 3, 8, 4)
    linear = 3 * 8 * 8 * 4                                # 24 tokens of 4 -> 8
    attention = 2 * 5 * 7 * (4 + 6)                       # 2 heads: q k^T and attn v
    assert (params, flops) == (4 * 8 + 8, linear + attention)


def _groupings(backbone: CrossFormer, height: int, width: int) -> Iterator[Tuple[int, Grouping]]:
    """(channels, grouping) of every block of ``backbone`` on a ``height x width`` image."""
    height, width = height // 4, width // 4
    for i, stage in enumerate(backbone.stages):
        if i:
            height, width = height // 2, width // 2
        for b in range(len(stage.blocks)):
            yield backbone.embed_dims * 2**i, Grouping.build(
                ('sda', 'lda')[b % 2], height, width, stage.group_size, stage.interval,
                torch.device('cpu'))


def _attention_products(backbone: CrossFormer, height: int, width: int) -> int:
    """2 * heads * head_dim * (query, key) pairs per block, from the groupings."""
    return sum(2 * dim * g.attention_pairs for dim, g in _groupings(backbone, height, width))


@pytest.mark.parametrize('shape', [(224, 224), (160, 96)])
def test_backbone_flops_include_every_attention_product(shape):
    backbone = CrossFormer('t', group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]).eval()
    complexity = count_complexity(backbone, shape)
    assert [type(count) for count in complexity] == [int, int, int]
    flops = complexity.flops
    inputs = torch.randn(1, 3, *shape)
    hooks_only = FlopAnalyzer(backbone, (inputs, )).unsupported_ops_warnings(False).total()
    assert flops - hooks_only == _attention_products(backbone, *shape)


def test_counting_keeps_the_training_mode():
    backbone = CrossFormer('t').train()
    count_complexity(backbone, 64)
    assert backbone.training


@pytest.mark.parametrize('shape, expected', [((800, ), (3, 800, 800)),
                                             ((1280, 800), (3, 1280, 800)),
                                             ((1, 64, 32), (1, 64, 32))])
def test_parse_input_shape(shape, expected):
    assert parse_input_shape(shape) == expected


@pytest.mark.parametrize('shape', [(), (0, 800), (-3, ), (1, 2, 3, 4), (2.5, 3)])
def test_parse_input_shape_rejects(shape):
    with pytest.raises(ValueError, match='positive integers'):
        parse_input_shape(shape)


@pytest.mark.parametrize('kind, size, interval, published, executed', [
    # SDA, 14 x 19, G = 7: the official code pads to 2 x 3 groups of 7 x 7; executed: 4 groups
    # of 7 x 7 and 2 of 7 x 5.
    ('sda', (14, 19), 2, 6 * 49**2, 4 * 49**2 + 2 * 35**2),
    # LDA, same map, I = 2: the papers count 2 x 2 groups of 7 x 10 tokens; executed: a span of
    # 2 x 2 groups of 7 x 7, then groups of 7 x 3 (column offset 0) and 7 x 2 (offset 1).
    ('lda', (14, 19), 2, 4 * 70**2, 4 * 49**2 + 2 * 21**2 + 2 * 14**2),
    # A map no larger than G is one group, counted alike.
    ('lda', (5, 19), 2, 95**2, 95**2),
])
def test_published_and_executed_attention_pairs(kind, size, interval, published, executed):
    grouping = Grouping.build(kind, *size, 7, interval, torch.device('cpu'))
    assert (published_pairs(grouping), grouping.attention_pairs) == (published, executed)


def test_attention_as_published():
    """published - executed adds up (published_pairs - attention_pairs) over every block."""
    backbone = CrossFormer('t', group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1])
    _, executed, published = count_complexity(backbone, (224, 308))
    assert published - executed == sum(
        2 * dim * (published_pairs(g) - g.attention_pairs)
        for dim, g in _groupings(backbone, 224, 308))
    assert published > executed


def test_published_count_stays_exact_when_a_trace_gives_tensors_and_floats(monkeypatch):
    """A whole Mask2Former traces the backbone's shapes as tensors (the correction is then an
    int64 tensor) and one of its FLOP handles returns a float: their sum was rounded to
    float32 (276041236480 for 276041245392 at mask2former_crossformerpp_s_50e)."""
    from crossformer_mm import analysis
    model = CrossFormer(arch='t')
    exact = count_complexity(model, (200, 300))
    correction, total = analysis.published_correction, FlopAnalyzer.total
    monkeypatch.setattr(analysis, 'published_correction',
                        lambda shape, grouping: torch.tensor(correction(shape, grouping)))
    monkeypatch.setattr(FlopAnalyzer, 'total', lambda self, *args: float(total(self, *args)))
    counted = count_complexity(model, (200, 300))
    assert counted == exact and all(type(n) is int for n in counted)
    # float32 would round the sum: padded LDA groups, a count float32 cannot hold
    assert exact.published_flops > exact.flops
    assert float(torch.tensor(float(exact.published_flops))) != exact.published_flops
