"""The official implementation's reference data, as the repository carries it (tests/data/reference).

The golden cases are stored compactly (int8 weight codes with a power-of-two scale, a float16
input, float32 outputs; see the README there); :func:`load_case` decodes one into exactly the
float32 weights and input the official code computed its outputs from.
"""
import functools
import json
from pathlib import Path
from typing import Dict, Tuple

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
