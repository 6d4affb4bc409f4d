_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='b',
        # Table V's first row, the official release: the classification G and I.
        group_size=7,
        interval=[8, 4, 2, 1],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformer-b.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
