# Mask R-CNN, CrossFormer++-B, 3x: the recipe of mask_rcnn_crossformer_s_3x.py. Detection runs
# CrossFormer's G = 7, I = [8, 4, 2, 1], not the ImageNet [4, 4, 14, 7] / [4, 2, 1, 1] of ++.
_base_ = './mask_rcnn_crossformer_s_3x.py'
pretrained = 'checkpoints/crossformerpp-b.pth'

model = dict(
    backbone=dict(
        arch='pp-b',
        group_size=7,
        interval=[8, 4, 2, 1],
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)))
