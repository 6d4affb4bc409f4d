# RetinaNet, CrossFormer-B, 1x: the recipe of retinanet_crossformer_s_1x.py; the 389.0G row.
_base_ = './retinanet_crossformer_s_1x.py'

model = dict(backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
