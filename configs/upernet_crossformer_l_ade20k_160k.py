# UPerNet, CrossFormer-L: the setting of upernet_crossformer_s_ade20k_160k.py.
_base_ = './upernet_crossformer_s_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='l', drop_path_rate=0.5, init_cfg=dict(checkpoint='checkpoints/crossformer-l.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
