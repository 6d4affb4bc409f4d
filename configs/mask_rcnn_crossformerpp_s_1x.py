# Mask R-CNN, CrossFormer++-S, 1x: the official config
# (crossformer_pp/mask_rcnn_crossformerpp_s_fpn_1x_coco.py), CrossFormer-S's recipe.
_base_ = ['./mask_rcnn_crossformer_s_1x.py', './_base_/det_crossformerpp_s.py']

model = dict(backbone=_base_.crossformerpp_s, neck=dict(in_channels=[64, 128, 256, 512]))
