"""NameFilesOnError: the demo configs' datasets name the file behind a loading error."""
import importlib
import os
import os.path as osp
import pickle

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from crossformer_mm.datasets import DataFileError, NameFilesOnError
from shapes import data_root_options, make_shapes_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG = osp.join(ROOT, 'configs', 'demo', 'fpn_crossformer-demo_shapes.py')
DET = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_crossformer-demo_shapes.py')


@pytest.fixture
def data_root(tmp_path):
    root = str(tmp_path / 'shapes') + '/'
    make_shapes_dataset(root, num_train=2, num_val=2, size=64)
    return root


def build(config: str, data_root: str, scope: str):
    """The demo config's validation dataset, in its toolbox's registry scope."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(data_root_options(cfg, data_root))
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.val_dataloader.dataset)


def corrupt(path: str) -> None:
    with open(path, 'wb') as f:
        f.write(b'not a png')


def test_the_wrapped_dataset_is_what_the_config_names(data_root):
    dataset = build(SEG, data_root, 'mmseg')
    assert isinstance(dataset, NameFilesOnError)
    assert type(dataset.dataset).__name__ == 'BaseSegDataset'
    assert len(dataset) == 2
    assert dataset.metainfo['classes'] == ('background', 'rectangle', 'triangle', 'ring')
    assert dataset[1]['inputs'].shape == (3, 64, 64)
    # Dataloader workers that are spawned get the dataset pickled.
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(copy) == 2 and copy.metainfo == dataset.metainfo


def test_a_corrupt_label_map_is_named(data_root):
    dataset = build(SEG, data_root, 'mmseg')
    label = osp.join(data_root, 'labels', 'val', '000001.png')
    corrupt(label)
    with pytest.raises(DataFileError) as err:
        dataset[1]
    image = osp.join(data_root, 'images', 'val', '000001.png')
    assert str(err.value).startswith(f'sample 1 ({image}, {label}): UnidentifiedImageError: ')
    assert dataset[0]['inputs'].shape == (3, 64, 64)


def test_a_corrupt_image_is_named(data_root):
    dataset = build(DET, data_root, 'mmdet')
    image = dataset.get_data_info(0)['img_path']
    corrupt(image)
    with pytest.raises(DataFileError) as err:
        dataset[0]
    assert str(err.value) == f'sample 0 ({image}): AssertionError: failed to load image: {image}'


def test_an_annotation_file_that_is_not_json_is_named(data_root):
    ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    with open(ann_file, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(DataFileError) as err:
        build(DET, data_root, 'mmdet')
    assert f'CocoDataset cannot load annotation file {ann_file}: JSONDecodeError: ' \
        in str(err.value)


def test_a_missing_annotation_file_is_named(data_root):
    ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    os.remove(ann_file)
    with pytest.raises(DataFileError, match=f'annotation file {ann_file}: FileNotFoundError'):
        build(DET, data_root, 'mmdet')
