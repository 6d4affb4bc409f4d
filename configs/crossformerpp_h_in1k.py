_base_ = './_base_/cls_crossformer_in1k.py'

model = dict(backbone=dict(arch='pp-h', drop_path_rate=0.5), head=dict(in_channels=1024))
