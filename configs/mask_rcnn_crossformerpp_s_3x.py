# Mask R-CNN, CrossFormer++-S, 3x: the recipe of mask_rcnn_crossformer_s_3x.py. Detection runs
# CrossFormer's G = 7, I = [8, 4, 2, 1], not the ImageNet [4, 4, 14, 7] / [4, 2, 1, 1] of ++.
_base_ = './mask_rcnn_crossformer_s_3x.py'
pretrained = 'checkpoints/crossformerpp-s.pth'

model = dict(
    backbone=dict(
        arch='pp-s',
        group_size=7,
        interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
