"""A dataset whose loading errors name the file they come from.

A corrupt label PNG fails in mmseg's ``LoadAnnotations`` with ``UnidentifiedImageError:
cannot identify image file <_io.BytesIO ...>`` and a broken COCO annotation file in pycocotools
with a bare ``JSONDecodeError``: neither says which file. :class:`NameFilesOnError` builds the
dataset a config asks for and re-raises such errors as :class:`DataFileError` naming the
annotation file or the sample's files. A config opts in per dataset by renaming its type and
keeping every other key where it is::

    dataset=dict(type='NameFilesOnError', dataset_type='CocoDataset', data_root=..., ...)

Nothing of mmengine or the toolboxes is patched.
"""
import os.path as osp
from typing import Any, List, Optional

from mmengine.registry import DATASETS
from torch.utils.data import Dataset


class DataFileError(ValueError):
    """A dataset file that cannot be read; the message names it."""


@DATASETS.register_module()
class NameFilesOnError(Dataset):
    """The dataset of type ``dataset_type`` built from the other arguments, naming its files in
    its errors.

    Every attribute (``metainfo``, ``pipeline``, ``get_data_info`` ...) is the wrapped
    dataset's, so samplers, evaluators and hooks see the dataset they expect; the wrapped one
    is ``.dataset``. ``dataset_type`` is looked up in the registry of the config's scope, as
    ``type`` would be.
    """

    def __init__(self, dataset_type: str, **kwargs: Any) -> None:
        self.dataset_type = dataset_type
        try:
            self.dataset = DATASETS.build(dict(kwargs, type=dataset_type))
        except Exception as err:
            raise DataFileError(_described(err, _annotation_file(kwargs), dataset_type)) from err

    def full_init(self) -> None:
        """Load the annotations now (``lazy_init=True`` datasets defer it)."""
        try:
            self.dataset.full_init()
        except Exception as err:
            raise DataFileError(
                _described(err, getattr(self.dataset, 'ann_file', None), self.dataset_type)
            ) from err

    def __getitem__(self, idx: int):
        try:
            return self.dataset[idx]
        except Exception as err:
            raise DataFileError(f'sample {idx} ({", ".join(self._files(idx))}): '
                                f'{type(err).__name__}: {err}') from err

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        # Unpickling looks up attributes before ``dataset`` is set: those are not delegated.
        if name == 'dataset' or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _files(self, idx: int) -> List[str]:
        """The paths in the sample's data info (``img_path``, ``seg_map_path`` ...)."""
        try:
            info = self.dataset.get_data_info(idx)
        except Exception:
            return ['its data info cannot be read']
        files = [value for key, value in info.items()
                 if key.endswith('_path') and isinstance(value, str)]
        return files or ['no file paths in its data info']


def _annotation_file(kwargs: dict) -> Optional[str]:
    """The annotation file that the dataset arguments name, under ``data_root``."""
    ann_file = kwargs.get('ann_file')
    if not ann_file:
        return None
    data_root = kwargs.get('data_root') or ''
    return ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)


def _described(err: Exception, ann_file: Optional[str], dataset_type: str) -> str:
    where = f'annotation file {ann_file}' if ann_file else 'its files'
    return f'{dataset_type} cannot load {where}: {type(err).__name__}: {err}'
