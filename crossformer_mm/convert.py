"""Official CrossFormer checkpoints -> checkpoints this package's configs load as they are.

Three kinds of official files exist: the ImageNet classifiers (``{'model': ...}``, bare backbone
names plus ``norm.*`` and ``head.*``), the mmdet 2.x detectors and the mmseg 0.x segmentors
(``{'state_dict': ...}``, backbone under ``backbone.``). Backbone keys are renamed with
:func:`~crossformer_mm.checkpoint.official_to_ours`; every other key by the prefix tables below,
which are the only place a toolbox's renames live.
"""
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.utils import ProgressBar

from .checkpoint import (load_checkpoint_file, local_checkpoint, official_to_ours, reading,
                         unwrap_state_dict)

#: (official prefix, our prefix) for the keys outside the backbone, per kind of checkpoint. The
#: classifier's final LayerNorm and linear layer become the backbone's ``norm3`` (out_indices=(3,),
#: out_norm_cfg=LN) and mmpretrain's ``LinearClsHead.fc``. mmdet 3 and mmseg 1 kept the parameter
#: names of mmdet 2.x / mmseg 0.x for every neck and head the configs here use (FPN; RetinaHead;
#: RPNHead; the standard and cascade RoI heads with Shared2FCBBoxHead and FCNMaskHead; UPerHead,
#: FPNHead and the auxiliary FCNHead), so those rows keep their prefix; a rename is one row.
PREFIX_RULES: Dict[str, List[Tuple[str, str]]] = {
    'classifier': [('norm.', 'backbone.norm3.'), ('head.', 'head.fc.')],
    'detector': [('neck.', 'neck.'), ('rpn_head.', 'rpn_head.'), ('bbox_head.', 'bbox_head.'),
                 ('roi_head.', 'roi_head.')],
    'segmentor': [('neck.', 'neck.'), ('decode_head.', 'decode_head.'),
                  ('auxiliary_head.', 'auxiliary_head.')],
}
KIND_NAMES = {
    'classifier': 'official ImageNet classifier (mmpretrain 1)',
    'detector': 'mmdet 2.x detector (mmdet 3)',
    'segmentor': 'mmseg 0.x segmentor (mmseg 1)',
}
#: Files at least this large show a progress bar while they are read.
PROGRESS_MIN_BYTES = 32 * 2**20


@dataclass
class Conversion:
    """A converted state dict and what happened to each key."""
    kind: str
    state_dict: Dict[str, torch.Tensor]
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)       # converted under the same name
    unknown: List[str] = field(default_factory=list)    # no rule covers them: kept as they are

    def summary(self) -> List[str]:
        """One line per renaming pattern (indices shown as ``*``), with its count."""
        patterns = Counter((_pattern(old), _pattern(new)) for old, new in self.renamed)
        lines = [f'{old} -> {new}  (x{n})' for (old, new), n in patterns.items()]
        lines.append(f'{len(self.renamed)} keys renamed, {len(self.kept)} kept their name')
        if self.unknown:
            lines.append(f'{len(self.unknown)} keys match no rule and were copied unchanged: '
                         f'{self.unknown[:5]}{" ..." if len(self.unknown) > 5 else ""}')
        return lines


def _pattern(key: str) -> str:
    return re.sub(r'(?<=\.)\d+(?=\.)', '*', key)


def detect_kind(state: Dict[str, torch.Tensor]) -> str:
    """``'classifier'``, ``'detector'`` or ``'segmentor'``, from the keys of an official file."""
    prefixes = {key.split('.', 1)[0] for key in state}
    if any(key.startswith(('stages.', 'backbone.stages.')) for key in state):
        raise ValueError('This checkpoint already uses this package\'s key names '
                         '(stages.*); it needs no conversion.')
    if {'patch_embed', 'layers', 'head'} <= prefixes:
        return 'classifier'
    if any(official_to_ours(key[len('backbone.'):]) for key in state
           if key.startswith('backbone.')):
        if prefixes & {'decode_head', 'auxiliary_head'}:
            return 'segmentor'
        if prefixes & {'rpn_head', 'roi_head', 'bbox_head'}:
            return 'detector'
    raise ValueError(
        'Not an official CrossFormer checkpoint: expected an ImageNet classifier '
        '(patch_embed.*, layers.*, head.*), an mmdet 2.x detector (backbone.patch_embed.* with '
        'rpn_head/roi_head/bbox_head) or an mmseg 0.x segmentor (backbone.patch_embed.* with '
        f'decode_head); its top-level key prefixes are {sorted(prefixes)[:10]}')


def convert_state_dict(state: Dict[str, torch.Tensor], kind: Optional[str] = None) -> Conversion:
    """Rename an official state dict (``module.`` already stripped) for this package."""
    kind = kind or detect_kind(state)
    if kind not in PREFIX_RULES:
        raise ValueError(f'kind must be one of {sorted(PREFIX_RULES)}, got {kind!r}')
    conv = Conversion(kind, {})
    backbone = '' if kind == 'classifier' else 'backbone.'
    for key, value in state.items():
        new = _rename(key, kind, backbone)
        if new is None:
            conv.unknown.append(key)
            new = key
        elif new == key:
            conv.kept.append(key)
        else:
            conv.renamed.append((key, new))
        if new in conv.state_dict:
            raise ValueError(f'Two keys of the checkpoint map to {new}')
        conv.state_dict[new] = value
    return conv


def _rename(key: str, kind: str, backbone: str) -> Optional[str]:
    if key.startswith(backbone):
        ours = official_to_ours(key[len(backbone):])
        if ours is not None:
            return 'backbone.' + ours
    for old, new in PREFIX_RULES[kind]:
        if key.startswith(old):
            return new + key[len(old):]
    return None


class _ProgressFile:
    """A binary file that advances a progress bar (in MiB) as torch reads it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path, 'rb')
        self.bar = ProgressBar(max(1, os.path.getsize(path) >> 20), file=sys.stdout)
        self.shown = 0

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self._advance()
        return data

    def readinto(self, buffer) -> int:
        n = self.file.readinto(buffer)
        self._advance()
        return n

    def _advance(self) -> None:
        done = min(self.file.tell() >> 20, self.bar.task_num)
        for _ in range(done - self.shown):  # torch seeks back and forth: count the furthest
            self.bar.update()
        self.shown = max(self.shown, done)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()



def read_checkpoint(path: str, progress: bool = True) -> dict:
    """Safe (``weights_only``) loading, with a progress bar for large local files."""
    path = local_checkpoint(path)
    if not progress or not os.path.isfile(path) or os.path.getsize(path) < PROGRESS_MIN_BYTES:
        return load_checkpoint_file(path)
    source = _ProgressFile(path)
    try:
        with reading(path):
            return torch.load(source, map_location='cpu', weights_only=True)
    finally:
        source.close()
        print()


def _meta(checkpoint: dict, src: str, kind: str) -> dict:
    """Provenance, and mmdet 2 / mmseg 0 class names and palette as mmengine's dataset_meta."""
    meta = {'converted_from': os.path.basename(src), 'official_kind': kind}
    old = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    dataset_meta = {new: old[key] for key, new in (('CLASSES', 'classes'), ('PALETTE', 'palette'))
                    if old.get(key) is not None}
    if dataset_meta:
        meta['dataset_meta'] = dataset_meta
    return meta


def convert_checkpoint(src: str, dst: str, progress: bool = True) -> Conversion:
    """Convert the official checkpoint ``src`` and save it to ``dst`` as an mmengine checkpoint."""
    checkpoint = read_checkpoint(src, progress)
    try:
        conv = convert_state_dict(unwrap_state_dict(checkpoint))
    except ValueError as err:
        raise ValueError(f'{src}: {err}') from None
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save({'meta': _meta(checkpoint, src, conv.kind), 'state_dict': conv.state_dict}, dst)
    return conv
