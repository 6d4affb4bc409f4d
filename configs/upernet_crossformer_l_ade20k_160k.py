_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='l',
        # Table V's first row, the official release: the classification G and I.
        group_size=7,
        interval=[8, 4, 2, 1],
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformer-l.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
