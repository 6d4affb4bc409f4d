# Mask R-CNN with a small CrossFormer trained from scratch on the synthetic shapes dataset
# (tools/make_shapes_dataset.py), sized for a few minutes on 2 CPU cores: the README demo.
# Other data: --cfg-options for {train,val,test}_dataloader.dataset.data_root and
# {val,test}_evaluator.ann_file (tools/demo.py shows how).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/crossformer_demo.py',
]

data_root = 'data/shapes/'
classes = ('rectangle', 'triangle', 'ring')  # CLASSES of tools/shapes.py
metainfo = dict(classes=classes, palette=[(220, 20, 60), (250, 170, 30), (120, 200, 60)])
image_size = (64, 64)
max_iters = 1500

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=_base_.crossformer_demo,
    neck=_base_.demo_neck,
    # Objects are 12-48 px: anchors of 16-256 px (scale 4 on strides 4-64).
    rpn_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64,
                       num_classes=len(classes))),
    # Few RoIs: with 2-3 objects an image, 32 samples hold all positives, and RoIAlign's
    # backward pass is what costs most on CPU.
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# Workers hold the pipeline's randomness, so a resumed run replays it exactly.
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(type='NameFilesOnError', dataset_type='CocoDataset', data_root=data_root,
                 metainfo=metainfo, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=10,
    num_workers=1,
    dataset=dict(type='NameFilesOnError', dataset_type='CocoDataset', data_root=data_root,
                 metainfo=metainfo, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=200, end=max_iters),
]

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=500,
                    max_keep_ckpts=2))
# Saves the random state with each checkpoint, so --resume continues exactly.
custom_hooks = [dict(type='RandomStateHook')]
log_processor = dict(by_epoch=False, window_size=50)
randomness = dict(seed=0, deterministic=True)
