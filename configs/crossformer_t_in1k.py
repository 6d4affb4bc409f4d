_base_ = './_base_/cls_crossformer_in1k.py'

model = dict(backbone=dict(arch='t', drop_path_rate=0.1), head=dict(in_channels=512))
