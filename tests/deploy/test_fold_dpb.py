"""crossformer_mm.deploy: folding the dynamic position biases into fixed tables."""
import copy

import pytest
import torch
from torch import nn

from crossformer_mm import CrossFormer
from crossformer_mm.deploy import FoldedPositionBias, fold_position_bias
from crossformer_mm.models.backbones.crossformer import DynamicPositionBias

TINY = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], group_size=[4, 4, 7, 7],
            interval=[4, 2, 1, 1], with_acl=True)


def backbone(**kwargs) -> CrossFormer:
    torch.manual_seed(0)
    model = CrossFormer(arch=TINY, **kwargs)
    model.init_weights()
    for m in model.modules():   # give the DPBs' LayerNorms non-trivial affine parameters
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, 1., .2)
            nn.init.normal_(m.bias, 0., .2)
    return model.eval()


@pytest.mark.parametrize('size,dense', [((224, 224), False), ((96, 160), True)])
def test_folded_outputs_equal(size, dense):
    """Same outputs (1e-5) as the DPB model, also with padded SDA/LDA groups."""
    kwargs = dict(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]) if dense else {}
    model = backbone(**kwargs)
    folded = fold_position_bias(copy.deepcopy(model), [size])
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        for a, b in zip(folded(x), model(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_folded_model_compiles_at_symbolic_sizes():
    """A graph of symbolic sizes (``torch.compile(dynamic=True)``; dynamo and AOTAutograd) takes
    the padded groups' tables: at both sizes the last spans of stages 1 and 2 make smaller
    groups; at 96 x 160 stages 3 and 4 are one whole-map group each, at 160 x 224 only 4."""
    model = backbone()
    sizes = [(96, 160), (160, 224)]
    folded = fold_position_bias(copy.deepcopy(model), sizes)
    torch._dynamo.reset()
    run = torch.compile(folded, dynamic=True, backend='aot_eager')
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(2, 3, *size)
            for a, b in zip(run(x), model(x)):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_folded_model_has_tables_not_mlps():
    folded = fold_position_bias(backbone(), (224, 224))
    assert not any(isinstance(m, DynamicPositionBias) for m in folded.modules())
    dpb_weights = [k for k in folded.state_dict() if '.dpb.' in k and 'table_' not in k]
    assert dpb_weights == []
    stage0 = folded.stages[0].blocks
    # 56x56 map: SDA 4x4 windows, LDA 4x4 tokens 4 apart; the 7x7 map of stage 4 is one group.
    assert stage0[0].attn.dpb.group_shapes == stage0[1].attn.dpb.group_shapes == [(4, 4)]
    assert stage0[1].attn.dpb.table_4x4.shape == (1, 7 * 7)   # heads x offsets
    assert folded.stages[3].blocks[1].attn.dpb.group_shapes == [(7, 7)]


def test_several_sizes_and_unseen_size():
    model = backbone()
    folded = fold_position_bias(copy.deepcopy(model), [(224, 224), (128, 128)])
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(folded(x)[-1], model(x)[-1], rtol=0, atol=1e-5)
        # stage 4 of a 160x160 input: one 5x5 group, which neither size makes
        with pytest.raises(ValueError, match=r'folded for inputs of \[\(224, 224\), '
                                             r'\(128, 128\)\].*a 5x5 map makes 5x5 groups'):
            folded(torch.randn(1, 3, 160, 160))


def test_folds_inside_a_classifier():
    """Any model holding a CrossFormer folds, here mmpretrain's ImageClassifier."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # other tests may leave another
        model = ImageClassifier(
            backbone=dict(type='CrossFormer', arch=TINY, out_indices=(3, ),
                          out_norm_cfg=dict(type='LN')),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=256)).eval()
    folded = fold_position_bias(copy.deepcopy(model), 224)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(folded(x, mode='tensor'), model(x, mode='tensor'), rtol=0,
                                   atol=1e-5)
    assert sum(isinstance(m, FoldedPositionBias) for m in folded.modules()) == 8


@pytest.mark.parametrize('model,sizes,message', [
    (nn.Linear(2, 2), 224, 'holds no CrossFormer'),
    (None, [(224, 16)], 'integers >= 32'),
    (None, [], 'pairs of integers'),
    (None, 'big', 'pairs of integers'),
])
def test_bad_input(model, sizes, message):
    with pytest.raises(ValueError, match=message):
        fold_position_bias(model or backbone(), sizes)


def test_refolding_refused():
    folded = fold_position_bias(backbone(), 224)
    with pytest.raises(ValueError, match='already folded'):
        fold_position_bias(folded, 128)
