# What the configs of this repository share: the plugin import (the backbone, the hooks, e.g.
# AtomicCheckpointHook, and the NameFilesOnError dataset type) and the CrossFormer-S backbone
# with its ImageNet-1k checkpoint (the official file, see the README), as the variable
# `crossformer` that the detection and segmentation configs use as `model.backbone`.
custom_imports = dict(imports=['crossformer_mm'], allow_failed_imports=False)
crossformer = dict(
    _delete_=True,
    type='CrossFormer',
    arch='s',
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformer-s.pth'))
