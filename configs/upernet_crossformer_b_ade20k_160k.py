# UPerNet, CrossFormer-B: the setting of upernet_crossformer_s_ade20k_160k.py.
_base_ = './upernet_crossformer_s_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='b', drop_path_rate=0.3, init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
