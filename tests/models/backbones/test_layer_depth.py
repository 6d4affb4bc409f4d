"""CrossFormer.get_layer_depth: the depths of layer-wise lr decay follow the order of
computation, as mmpretrain's Swin counts them."""
import torch
from torch import nn

from crossformer_mm.models import CrossFormer

# Two blocks in stage 1 and four in stage 3, whose third has an ACL.
TINY_PP = dict(embed_dims=16, depths=[2, 1, 4, 1], num_heads=[1, 1, 2, 2],
               group_size=[4, 4, 14, 7], interval=[4, 2, 1, 1], with_acl=True)


def execution_order(model: nn.Module, image: torch.Tensor) -> list:
    """The names of the parameters in the order their modules finish running (a module that
    uses its children's weights without calling them, as the MLP does, counts for them)."""
    order, handles = [], []
    for prefix, module in model.named_modules():
        names = [f'{prefix}.{name}'.lstrip('.') for name, _ in module.named_parameters()]
        handles.append(module.register_forward_hook(
            lambda *_, names=names: order.extend(n for n in names if n not in order)))
    model(image)
    for handle in handles:
        handle.remove()
    return order


def test_depths_follow_the_order_of_computation():
    model = CrossFormer(TINY_PP)
    order = execution_order(model, torch.zeros(1, 3, 64, 64))
    assert sorted(order) == sorted(name for name, _ in model.named_parameters())
    depths = [model.get_layer_depth(name) for name in order]
    assert {n for _, n in depths} == {sum(TINY_PP['depths']) + 2} == {10}
    assert [d for d, _ in depths] == sorted(d for d, _ in depths)
    # The stem, then one depth per block; the top one (9) is left to the out norms and heads.
    assert sorted({d for d, _ in depths}) == list(range(9))


def test_where_cels_acls_and_out_norms_go():
    model = CrossFormer(TINY_PP, out_norm_cfg=dict(type='LN'))
    depth = {name: model.get_layer_depth('backbone.' + name, prefix='backbone.')[0]
             for name, _ in model.named_parameters()}
    assert depth['stages.0.cel.projs.0.weight'] == depth['stages.0.cel.norm.bias'] == 0
    assert depth['stages.0.blocks.0.attn.qkv.weight'] == 1
    assert depth['stages.0.blocks.1.ffn.layers.1.weight'] == 2
    # A later CEL shares the depth of the previous stage's last block (Swin's patch merging).
    assert depth['stages.1.cel.norm.weight'] == depth['stages.0.blocks.1.norm2.weight'] == 2
    assert depth['stages.1.blocks.0.norm1.weight'] == 3
    assert depth['stages.2.cel.projs.1.weight'] == 3
    # The ACL after stage 3's third block shares that block's depth.
    assert depth['stages.2.blocks.2.acl.conv.weight'] == \
        depth['stages.2.blocks.2.attn.dpb.proj.weight'] == 3 + 3
    assert depth['stages.3.blocks.0.attn.proj.bias'] == 8
    assert depth['norm0.weight'] == depth['norm3.bias'] == 9
    # Parameters outside the prefix (a neck, a head) are at the top.
    assert model.get_layer_depth('neck.conv.weight', prefix='backbone.') == (9, 10)
