# UPerNet, CrossFormer++-L.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='pp-l', drop_path_rate=0.5,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-l.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
