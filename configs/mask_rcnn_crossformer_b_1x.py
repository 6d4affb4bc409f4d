# Mask R-CNN, CrossFormer-B, 1x: the official config (mask_rcnn_crossformer_b_fpn_1x_coco.py), the
# recipe of mask_rcnn_crossformer_s_1x.py with the official CrossFormer_B's drop path 0.3; the
# 407.9G row.
_base_ = './mask_rcnn_crossformer_s_1x.py'

model = dict(
    backbone=dict(
        arch='b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
