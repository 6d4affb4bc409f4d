# UPerNet with a CrossFormer backbone on ADE20K 512x512: mmseg's Swin recipe (AdamW, lr 6e-5,
# weight decay 0.01, 1500 linear warm-up iterations then linear (poly, power 1) decay, 160k
# iterations at batch 16 = 8 GPUs x 2), as the CrossFormer++ paper (sec. 5.3) trains it.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './crossformer.py'
]

# The dense-task group sizes and intervals (CrossFormer++ rows of Table V).
model = dict(
    backbone=dict(_base_.crossformer, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Multi-scale flip testing on ADE20K as the papers ran it (their "MS IoU"), for
# `tools/test.py CONFIG CHECKPOINT --tta`: mmseg 0.x's MultiScaleFlipAug, i.e. the test scale
# (2048, 512) times each ratio, each also flipped. mmseg 1.x's ADE20K base instead scales the
# original image by the ratios.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='ADE20KDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
