"""FLOP counting: mmengine's counts plus the attention products, exactly."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn

from crossformer_mm import CrossFormer
from crossformer_mm.analysis import count_params_and_flops, parse_input_shape
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
    params, flops = count_params_and_flops(model, (8, 4))  # input (1, 3, 8, 4)
    linear = 3 * 8 * 8 * 4                                # 24 tokens of 4 -> 8
    attention = 2 * 5 * 7 * (4 + 6)                       # 2 heads: q k^T and attn v
    assert (params, flops) == (4 * 8 + 8, linear + attention)


def _attention_products(backbone: CrossFormer, height: int, width: int) -> int:
    """2 * groups * heads * N * N * head_dim per block, from the groupings, padding included."""
    total = 0
    height, width = height // 4, width // 4
    for i, stage in enumerate(backbone.stages):
        if i:
            height, width = height // 2, width // 2
        dim = backbone.embed_dims * 2**i
        for b in range(len(stage.blocks)):
            g = Grouping.build(('sda', 'lda')[b % 2], height, width, stage.group_size,
                               stage.interval, torch.device('cpu'))
            total += 2 * g.num_groups * g.num_tokens**2 * dim
    return total


@pytest.mark.parametrize('shape', [(224, 224), (160, 96)])
def test_backbone_flops_include_every_attention_product(shape):
    backbone = CrossFormer('t', group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]).eval()
    _, flops = count_params_and_flops(backbone, shape)
    inputs = torch.randn(1, 3, *shape)
    hooks_only = FlopAnalyzer(backbone, (inputs, )).unsupported_ops_warnings(False).total()
    assert flops - hooks_only == _attention_products(backbone, *shape)


def test_counting_keeps_the_training_mode():
    backbone = CrossFormer('t').train()
    count_params_and_flops(backbone, 64)
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


def test_lda_as_published():
    backbone = CrossFormer('t', group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1])
    executed = count_params_and_flops(backbone, (224, 320))[1]
    published = count_params_and_flops(backbone, (224, 320), lda_as_published=True)[1]
    # Only stage 3 (14 x 20 tokens, I = 2, 256 channels, 4 LDA blocks) is larger than G * I:
    # the papers count 2 x 2 groups of 7 x 10 tokens; the code attends in 8 groups of 7 x 7.
    assert published - executed == 4 * 2 * 256 * (4 * 70**2 - 8 * 49**2)
