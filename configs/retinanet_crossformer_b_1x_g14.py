# retinanet_crossformer_b_1x.py with the dense-task group sizes of section 3.3: the 379.1G row.
_base_ = './retinanet_crossformer_b_1x.py'

model = dict(backbone=dict(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]))
