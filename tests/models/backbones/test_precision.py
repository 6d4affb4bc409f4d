"""Reduced precision: a backbone converted with .half() / .bfloat16() runs forward in every path,
close to float32; one with ``compute_dtype`` computes in it and returns float32 (precision.py)."""
import copy

import pytest
import torch
import torch.nn.functional as F

from crossformer_mm import CrossFormer
from crossformer_mm.models.backbones import captured, precision
from _reference import CASES
from test_crossformer import load_golden

ARCH = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], group_size=[4, 4, 3, 3],
            interval=[4, 2, 2, 1], with_acl=True)
#: Largest difference to float32, relative to the output's largest value: the dtype's
#: rounding (fp16: 11 bits of mantissa, bf16: 8) accumulated over the blocks.
TOLERANCE = {torch.float16: 0.01, torch.bfloat16: 0.05}


def model() -> CrossFormer:
    torch.manual_seed(0)
    m = CrossFormer(ARCH, drop_path_rate=0.)
    for p in m.parameters():  # LayerNorms start at 1 / 0: perturb so they count
        p.data.add_(torch.randn_like(p) * 0.02)
    return m


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('path', ['eager', 'captured', 'train', 'train_cp'])
def test_converted_forward_close_to_float32(dtype, path, monkeypatch):
    m = model()
    x = torch.randn(2, 3, 100, 132)       # padded spans; stage 4 (3 x 4) is one whole-map group
    if path == 'captured':
        monkeypatch.setattr(captured, 'capturing', lambda: True)
    train = path.startswith('train')
    m.train(train)
    with torch.no_grad():
        refs = m(x)
    low = copy.deepcopy(m).to(dtype)
    if path == 'train_cp':
        for stage in low.stages:
            stage.with_cp = True
    with torch.set_grad_enabled(train):
        outs = low(x.to(dtype))
    if train:
        sum(out.float().sum() for out in outs).backward()
        assert all(p.grad is not None and p.grad.dtype == dtype
                   for p in low.parameters() if p.requires_grad)
    for out, ref in zip(outs, refs):
        assert out.dtype == dtype and out.shape == ref.shape
        err = (out.float() - ref).abs().max() / ref.abs().max()
        assert err < TOLERANCE[dtype], f'{err:.4f}'


# ------------------------------------------------- compute_dtype: autocast inside the backbone
@pytest.fixture
def cpu_with(monkeypatch):
    """Take the CPU to have exactly the given /proc/cpuinfo flags; nothing warned yet."""
    monkeypatch.setattr(precision, '_checked', set())

    def set_flags(*flags: str) -> None:
        monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset(flags))
    set_flags('avx512_bf16', 'avx512_fp16')
    return set_flags


@pytest.mark.parametrize('name, dtype', [('bfloat16', torch.bfloat16), ('fp16', torch.float16)])
@pytest.mark.parametrize('train', [False, True])
def test_compute_dtype_computes_low_and_returns_float32(cpu_with, name, dtype, train):
    ref = model().train(train)
    low = copy.deepcopy(ref)
    low._autocast_dtype = precision.resolve_dtype(name)  # as compute_dtype=name builds it
    seen = []
    low.stages[0].blocks[0].attn.qkv.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype))
    x = torch.randn(2, 3, 100, 132)
    with torch.set_grad_enabled(train):
        refs, outs = ref(x), low(x)
    assert seen == [dtype]
    for out, r in zip(outs, refs):
        assert out.dtype == torch.float32 and out.shape == r.shape
        err = (out - r).abs().max() / r.abs().max()
        assert 0 < err < TOLERANCE[dtype], f'{err:.4f}'
    if train:
        sum(out.sum() for out in outs).backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32
                   and torch.isfinite(p.grad).all() for p in low.parameters())


def test_compute_dtype_in_the_constructor():
    assert CrossFormer(ARCH, compute_dtype='bf16')._autocast_dtype == torch.bfloat16
    assert CrossFormer(ARCH, compute_dtype='float32')._autocast_dtype is None
    with pytest.raises(ValueError, match=r"^compute_dtype must be one of \['bf16', 'bfloat16', "
                       r"'float16', 'fp16'\] or None \(float32\), got 'int8'$"):
        CrossFormer(ARCH, compute_dtype='int8')


@pytest.mark.parametrize('flags, warns', [(('avx2', 'fma'), True), (('avx512_bf16', ), False),
                                          (('amx_bf16', ), False), (('bf16', ), False)])
def test_warns_once_where_the_cpu_lacks_bf16(cpu_with, flags, warns, recwarn):
    cpu_with(*flags)
    m = CrossFormer(ARCH, compute_dtype='bfloat16').eval()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(1, 3, 32, 32))
    messages = [str(w.message) for w in recwarn if 'CrossFormer computes in' in str(w.message)]
    assert messages == ([
        'CrossFormer computes in bfloat16 on a CPU without bfloat16 instructions (none of '
        'avx512_bf16, amx_bf16, bf16 in /proc/cpuinfo; PyTorch CPU capability '
        f'{torch.backends.cpu.get_cpu_capability()}): PyTorch emulates it, which is likely '
        'slower than float32'] if warns else [])


def test_cpu_flags_of_this_machine():
    flags = precision.cpu_flags()
    assert flags is None or isinstance(flags, frozenset) and flags


@pytest.mark.parametrize('amx', [False, True], ids=['written-out', 'fused-amx'])
@pytest.mark.parametrize('name', CASES)
def test_golden_cases_in_bf16(cpu_with, name, amx, monkeypatch):
    """The official golden cases computed in bf16, attention written out or (a CPU with AMX)
    through the fused kernel: the largest error relative to the largest official value, of
    each stage's map (dense) or of the logits (classifiers; docs/benchmark.md lists them)."""
    monkeypatch.setattr(precision, 'AMX_DTYPES', frozenset({torch.bfloat16} if amx else ()))
    case, m, head = load_golden(name)
    m._autocast_dtype = torch.bfloat16
    with torch.no_grad():
        outs = m(case['input'])
    if head:
        outs = [F.linear(outs[0].mean((2, 3)), head['head.weight'], head['head.bias'])]
    refs = case['stage_outputs'] if not head else [case['logits']]
    errors = [((out - ref).abs().max() / ref.abs().max()).item() for out, ref in zip(outs, refs)]
    print(f'{name}: bf16 error / max |official|: ' + ', '.join(f'{e:.2e}' for e in errors))
    assert all(0 < e < TOLERANCE[torch.bfloat16] for e in errors)
