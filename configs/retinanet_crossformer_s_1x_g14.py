# retinanet_crossformer_s_1x.py with the dense-task group sizes of section 3.3: the 272.1G row.
_base_ = './retinanet_crossformer_s_1x.py'

model = dict(backbone=dict(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]))
