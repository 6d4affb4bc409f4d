# RetinaNet, CrossFormer++-B, 1x (no official config): the recipe and group sizes of its official
# sibling retinanet_crossformerpp_s_1x.py; drop path 0.3 as the official CrossFormer_B2 class.
_base_ = './retinanet_crossformerpp_s_1x.py'

model = dict(
    backbone=dict(
        arch='pp-b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')),
    neck=dict(in_channels=[192, 384, 768]))
