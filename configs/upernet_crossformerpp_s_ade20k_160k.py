# UPerNet, CrossFormer++-S.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='pp-s', drop_path_rate=0.2,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
