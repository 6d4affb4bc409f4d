# Mask R-CNN, CrossFormer-B, 3x: the recipe and group sizes of mask_rcnn_crossformer_s_3x.py;
# the 398.1G row.
_base_ = './mask_rcnn_crossformer_s_3x.py'

model = dict(
    backbone=dict(
        arch='b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
