"""The official CrossFormer code's parameter names -> this backbone's.

The official backbone (github.com/cheerss/CrossFormer) names its stages ``layers`` and keeps the
next stage's cross-scale embedding (CEL) in each stage as ``downsample``; here every stage starts
with its own CEL, so the official stage ``s`` downsample is stage ``s + 1``'s ``cel``. The
dynamic position bias MLP counts its layers from 1 (``pos1``..``pos3``), CrossFormer++'s
amplitude cooling layer is ``ex_conv`` + ``ex_ln``, and the FFN keeps mmcv's layout.
"""
import re
from typing import Dict, Mapping

from torch import Tensor

#: (official pattern, our name), tried in order on each key; the first that matches renames it.
OFFICIAL_RENAMES = [
    (r'^patch_embed\.projs\.', 'stages.0.cel.projs.'),
    (r'^patch_embed\.norm\.', 'stages.0.cel.norm.'),
    (r'^layers\.(\d+)\.downsample\.norm\.', lambda m: f'stages.{int(m[1]) + 1}.cel.norm.'),
    (r'^layers\.(\d+)\.downsample\.reductions\.',
     lambda m: f'stages.{int(m[1]) + 1}.cel.projs.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.pos\.pos_proj\.',
     r'stages.\1.blocks.\2.attn.dpb.proj.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.pos\.pos([123])\.',
     lambda m: f'stages.{m[1]}.blocks.{m[2]}.attn.dpb.layers.{int(m[3]) - 1}.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.', r'stages.\1.blocks.\2.ffn.layers.0.0.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.', r'stages.\1.blocks.\2.ffn.layers.1.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.ex_conv\.', r'stages.\1.blocks.\2.acl.conv.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.ex_ln\.', r'stages.\1.blocks.\2.acl.norm.'),
    (r'^layers\.(\d+)\.blocks\.', r'stages.\1.blocks.'),
]
_COMPILED = [(re.compile(pattern), name) for pattern, name in OFFICIAL_RENAMES]


def official_to_ours(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """An official backbone state dict under this backbone's names, in the same order.

    Takes the backbone part of any official checkpoint: the ImageNet classifier's (its ``norm.*``
    and ``head.*`` are not backbone keys) or the ``backbone.*`` of an mmdet 2.x / mmseg 0.x model
    with that prefix removed. Keys that are not official backbone names, this package's own
    among them, are kept as they are, so converting twice changes nothing.
    """
    return {_rename(key): value for key, value in state_dict.items()}


def _rename(key: str) -> str:
    for pattern, name in _COMPILED:
        new, found = pattern.subn(name, key, count=1)
        if found:
            return new
    return key
