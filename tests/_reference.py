"""The official implementation's reference data (tests/data/reference) and its key names.

The golden cases are stored compactly (int8 weight codes with a power-of-two scale, a float16
input, float32 outputs; see the README there); :func:`load_case` decodes one into exactly the
float32 weights and input the official code computed its outputs from. :func:`ours_to_official`
writes a backbone's state dict the way the official code names it, to make official-format
checkpoints of any arch.
"""
import functools
import json
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

REFERENCE_DIR = Path(__file__).resolve().parent / 'data' / 'reference'
#: The golden cases: two classifiers and two dense (detection / segmentation) backbones.
CASES = ('cls_tiny', 'cls_pp_tiny', 'det_tiny_dense', 'det_tiny_odd')


@functools.lru_cache(maxsize=None)
def _read_case(name: str) -> dict:
    return torch.load(REFERENCE_DIR / f'{name}.pt', weights_only=True)


def load_case(name: str) -> dict:
    """``config`` (official hyper-parameters), ``input``, ``state_dict`` (official key names),
    ``stage_outputs``, ``logits`` (None for a dense backbone) and ``description`` of a case.

    The dict and its state dict are new on every call, so a test may pop keys from them.
    """
    case = _read_case(name)
    state_dict = {key: offset + codes.float() * scale
                  for key, (codes, offset, scale) in case['weights'].items()}
    state_dict.update(case['buffers'])
    return dict(description=case['description'], config=dict(case['config']),
                input=case['input_f16'].float(), state_dict=state_dict,
                stage_outputs=list(case['stage_outputs']), logits=case.get('logits'))


def official_keys(variant: str) -> Dict[str, Tuple[int, ...]]:
    """key -> shape of the official ImageNet classifier of ``variant`` ('t', 's', 'pp-s', ...)."""
    path = REFERENCE_DIR / 'official_keys' / f'crossformer_{variant.replace("-", "_")}.txt'
    keys = {}
    for line in path.read_text().splitlines():
        key, shape = line.split(' ', 1)
        keys[key] = tuple(json.loads(shape))
    return keys


def variants() -> dict:
    """Each official variant's hyper-parameters, parameter count and published FLOPs."""
    return json.loads((REFERENCE_DIR / 'official_keys' / 'variants.json').read_text())


#: This backbone's names -> the official code's: the inverse of the package's
#: ``official_to_ours``, written on its own so that the two check each other.
_TO_OFFICIAL = [(re.compile(pattern), name) for pattern, name in [
    (r'^stages\.0\.cel\.projs\.', 'patch_embed.projs.'),
    (r'^stages\.0\.cel\.norm\.', 'patch_embed.norm.'),
    (r'^stages\.(\d+)\.cel\.norm\.', lambda m: f'layers.{int(m[1]) - 1}.downsample.norm.'),
    (r'^stages\.(\d+)\.cel\.projs\.',
     lambda m: f'layers.{int(m[1]) - 1}.downsample.reductions.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.attn\.dpb\.proj\.',
     r'layers.\1.blocks.\2.attn.pos.pos_proj.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.attn\.dpb\.layers\.(\d+)\.',
     lambda m: f'layers.{m[1]}.blocks.{m[2]}.attn.pos.pos{int(m[3]) + 1}.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.', r'layers.\1.blocks.\2.mlp.fc1.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.1\.', r'layers.\1.blocks.\2.mlp.fc2.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.acl\.conv\.', r'layers.\1.blocks.\2.ex_conv.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.acl\.norm\.', r'layers.\1.blocks.\2.ex_ln.'),
    (r'^stages\.(\d+)\.blocks\.', r'layers.\1.blocks.'),
]]


def ours_to_official(key: str) -> Optional[str]:
    """The official name of one of this backbone's keys; None for those it has no name for (the
    per-output norms, which the official backbone does not have)."""
    for pattern, name in _TO_OFFICIAL:
        new, found = pattern.subn(name, key, count=1)
        if found:
            return new
    return None
