# ADE20K as the official CrossFormer segmentation configs train and test it
# (segmentation/configs/_base_/datasets/ade20k.py and ade20k_swin.py): mmseg's ADE20K training
# pipeline, which is theirs; the test image resized to (2048, 512) keeping its ratio, then both
# sides up to multiples of 32 (the official AlignResize; mmseg 1's ResizeToMultiple).
_base_ = 'mmseg::_base_/datasets/ade20k.py'

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    # after the resize: the ground truth stays at the image's own size
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# `tools/test.py CONFIG CHECKPOINT --tta`: the official multi-scale test (the papers' "MS IOU";
# ade20k_swin.py's MultiScaleFlipAug): the test scale (2048, 512) times each ratio, aligned to
# multiples of 32, without flipping, the softmax outputs averaged.
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
            [dict(type='ResizeToMultiple', size_divisor=32)],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
