"""Convert an official CrossFormer checkpoint for mmpretrain 1, mmdet 3 or mmseg 1.

    python tools/convert_checkpoint.py crossformer-s.pth checkpoints/crossformer_s_in1k.pth

Takes an ImageNet classifier, an mmdet 2.x detector or an mmseg 0.x segmentor of the official
repository (detected from its keys), reads it with safe ``weights_only`` loading and writes an
mmengine checkpoint that the matching config of this repository loads with no missing and no
unexpected keys (``load_from=...`` or ``init_cfg=dict(type='Pretrained', ...)``).

Three kinds of official files exist: the ImageNet classifiers (``{'model': ...}``, bare backbone
names plus ``norm.*`` and ``head.*``), the mmdet 2.x detectors and the mmseg 0.x segmentors
(``{'state_dict': ...}``, backbone under ``backbone.``). Backbone keys are renamed by the
backbone's own :func:`~crossformer_mm.models.backbones.official_keys.official_to_ours`; every
other key by the prefix tables below, which are the only place a toolbox's renames live.
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from crossformer_mm.checkpoint import (UnsafeCheckpointError, read_checkpoint,
                                       unwrap_state_dict)
from crossformer_mm.models.backbones.official_keys import official_to_ours

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
    if _backbone_renames(state, 'backbone.'):
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
    backbone = _backbone_renames(state, '' if kind == 'classifier' else 'backbone.')
    for key, value in state.items():
        new = backbone.get(key) or _rename(key, kind)
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


def _backbone_renames(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, str]:
    """key -> ``backbone.`` + our name, for the keys under ``prefix`` that are official
    backbone names."""
    official = {key[len(prefix):]: key for key in state if key.startswith(prefix)}
    ours = official_to_ours(dict.fromkeys(official))  # the names only: same order
    return {official[old]: 'backbone.' + new for old, new in zip(official, ours) if new != old}


def _rename(key: str, kind: str) -> Optional[str]:
    for old, new in PREFIX_RULES[kind]:
        if key.startswith(old):
            return new + key[len(old):]
    return None


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
    checkpoint = read_checkpoint(src, progress=progress)
    try:
        conv = convert_state_dict(unwrap_state_dict(checkpoint))
    except ValueError as err:
        raise ValueError(f'{src}: {err}') from None
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save({'meta': _meta(checkpoint, src, conv.kind), 'state_dict': conv.state_dict}, dst)
    return conv


def output_path(src: str, dst: str) -> str:
    """Where to write: ``dst``, or ``dst/<src name>_converted.pth`` for a directory (an existing
    one, or a path ending in a separator, which is created). Never the input file itself."""
    if osp.isdir(dst) or dst.endswith(('/', os.sep)):
        os.makedirs(dst, exist_ok=True)
        dst = osp.join(dst, osp.splitext(osp.basename(src))[0] + '_converted.pth')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ValueError(f'the output {dst} is the input checkpoint; write the converted one '
                         'elsewhere (a directory gets <name>_converted.pth)')
    parent = osp.dirname(osp.abspath(dst))
    if osp.isdir(parent) and not os.access(parent, os.W_OK):
        raise ValueError(f'cannot write {dst}: the directory {parent} is not writable')
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args()
    try:
        args.dst = output_path(args.src, args.dst)
        conv = convert_checkpoint(args.src, args.dst)
    except (ValueError, OSError, UnsafeCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}: {KIND_NAMES[conv.kind]}')
    print('\n'.join(conv.summary()))
    print(f'saved {len(conv.state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
