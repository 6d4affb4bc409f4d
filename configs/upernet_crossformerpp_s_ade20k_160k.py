# UPerNet, CrossFormer++-S: the official config
# (crossformer_pp/upernet_crossformerpp_s_ade20k.py), G = 7 and I = [8, 4, 2, 1].
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='pp-s', drop_path_rate=0.2, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
