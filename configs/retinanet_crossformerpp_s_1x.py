# RetinaNet, CrossFormer++-S, 1x: the official config
# (crossformer_pp/retinanet_crossformerpp_s_fpn_1x_coco.py), CrossFormer-S's recipe.
_base_ = ['./retinanet_crossformer_s_1x.py', './_base_/det_crossformerpp_s.py']

model = dict(
    backbone=dict(_base_.crossformerpp_s, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[128, 256, 512]))
