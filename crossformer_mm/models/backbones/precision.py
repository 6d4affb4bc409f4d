"""The backbone's reduced precision: ``CrossFormer(compute_dtype='bfloat16')`` (or ``'float16'``).

The backbone then computes under ``torch.autocast`` of its input's device and returns its maps
in the input's dtype (float32), so that necks, heads and mmcv's ops (NMS, RoIAlign: float32
only on CPU) see what they expect, whatever the toolbox. On a CPU without instructions for the
dtype, PyTorch emulates it, usually slower than float32: the first forward there warns once,
naming what the CPU lacks.
"""
import warnings
from typing import ContextManager, FrozenSet, Optional

import torch

#: compute_dtype's names (PyTorch's and mmengine's AmpOptimWrapper's) -> the autocast dtype.
DTYPES = {'float16': torch.float16, 'fp16': torch.float16,
          'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}

#: The /proc/cpuinfo flags of instructions that compute in each dtype: x86 (AVX-512, AMX) and
#: Arm (``bf16``; ``asimdhp``, half-precision arithmetic).
NATIVE_FLAGS = {torch.bfloat16: ('avx512_bf16', 'amx_bf16', 'bf16'),
                torch.float16: ('avx512_fp16', 'amx_fp16', 'asimdhp')}

_checked = set()  # the dtypes warn_if_emulated has looked up


def resolve_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    """The autocast dtype of ``compute_dtype`` (None: float32, no autocast)."""
    if name is None or name in ('float32', 'fp32'):
        return None
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f'compute_dtype must be one of {sorted(DTYPES)} or None (float32), '
                         f'got {name!r}')
    return DTYPES[name]


def cpu_flags() -> Optional[FrozenSet[str]]:
    """The CPU's feature flags from /proc/cpuinfo (x86 ``flags``, Arm ``Features``); None where
    there is no such file."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


#: The reduced dtypes this CPU multiplies in AMX tiles. PyTorch's fused CPU attention kernel
#: computes in those through oneDNN (elsewhere it computes in float32 inside and gains nothing).
AMX_DTYPES = frozenset({torch.bfloat16} if 'amx_bf16' in (cpu_flags() or ()) else ())


def warn_if_emulated(dtype: torch.dtype) -> None:
    """Warn, once per dtype, that this CPU has none of the instructions of ``dtype``."""
    if dtype in _checked:
        return
    _checked.add(dtype)
    flags = cpu_flags()
    if flags is None or flags & set(NATIVE_FLAGS[dtype]):
        return
    name = str(dtype).replace('torch.', '')
    warnings.warn(
        f'CrossFormer computes in {name} on a CPU without {name} instructions (none of '
        f'{", ".join(NATIVE_FLAGS[dtype])} in /proc/cpuinfo; PyTorch CPU capability '
        f'{torch.backends.cpu.get_cpu_capability()}): PyTorch emulates it, which is likely '
        f'slower than float32', stacklevel=3)


def autocast(device_type: str, dtype: torch.dtype) -> ContextManager:
    """``torch.autocast`` to ``dtype`` on ``device_type``, after :func:`warn_if_emulated` on CPU
    (not while ``torch.compile`` traces: reading /proc/cpuinfo would break the graph)."""
    if device_type == 'cpu' and not torch.compiler.is_compiling():
        warn_if_emulated(dtype)
    return torch.autocast(device_type, dtype=dtype)
