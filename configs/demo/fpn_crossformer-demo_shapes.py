# Semantic FPN with a small CrossFormer trained from scratch on the synthetic shapes dataset
# (tools/make_shapes_dataset.py), sized for a few minutes on 2 CPU cores: the README demo.
# Other data: --cfg-options {train,val,test}_dataloader.dataset.data_root=... (tools/demo.py).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
    './_base_/crossformer_demo.py',
]

data_root = 'data/shapes/'
# SEG_CLASSES of tools/shapes.py: label 0 is the background, 1-3 the shapes.
metainfo = dict(classes=('background', 'rectangle', 'triangle', 'ring'),
                palette=[(0, 0, 0), (220, 20, 60), (250, 170, 30), (120, 200, 60)])
max_iters = 2000
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size_divisor=32),
    pretrained=None,
    backbone=_base_.crossformer_demo,
    neck=_base_.demo_neck,
    decode_head=dict(in_channels=[64] * 4, channels=64, num_classes=len(metainfo['classes']),
                     norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# NameFilesOnError: a BaseSegDataset whose loading errors name the file.
dataset = dict(type='NameFilesOnError', dataset_type='BaseSegDataset', data_root=data_root,
               metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png',
               reduce_zero_label=False)
# Workers hold the pipeline's randomness, so a resumed run replays it exactly.
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=10,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/val', seg_map_path='labels/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=200, end=max_iters),
]

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=500, max_keep_ckpts=2))
# Saves the random state with each checkpoint, so --resume continues exactly.
custom_hooks = [dict(type='RandomStateHook')]
log_processor = dict(window_size=50)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, deterministic=True)
