_base_ = './_base_/cls_crossformer_in1k.py'

model = dict(backbone=dict(arch='s', drop_path_rate=0.2), head=dict(in_channels=768))
