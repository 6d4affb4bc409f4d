# Mask R-CNN, CrossFormer++-B, 3x (no official config): the recipe and group sizes of
# mask_rcnn_crossformerpp_s_3x.py; drop path 0.3 as the official CrossFormer_B2 class.
_base_ = './mask_rcnn_crossformerpp_s_3x.py'

model = dict(
    backbone=dict(
        arch='pp-b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
