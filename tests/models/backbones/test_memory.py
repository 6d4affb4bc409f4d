"""The memory-saving autograd functions equal plain autograd, forward and backward, and keep
less for the backward pass."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crossformer_mm.models.backbones import memory, precision
from crossformer_mm.models.backbones.crossformer import CrossFormerFFN


def _reference_attention(qkv, bias):
    """Matmul, softmax, matmul: what autograd differentiates without help."""
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    logits = q * q.shape[-1]**-0.5 @ k.transpose(-2, -1) + bias
    return logits.softmax(-1) @ v


@pytest.mark.parametrize('chunk', [1 << 22, 3 * 2 * 12 * 12])   # one chunk; 3 of 7 groups
def test_attention_gradients_with_the_learnt_bias(monkeypatch, chunk):
    monkeypatch.setattr(memory, 'CHUNK_ELEMENTS', chunk)
    qkv = torch.randn(7, 12, 3, 2, 8, requires_grad=True)   # groups, N, qkv, heads, d
    bias = torch.randn(2, 12, 12, requires_grad=True)
    grad = torch.randn(7, 2, 12, 8)
    # Ops of their own: fake kernels (output layouts) and autograd checked by opcheck.
    torch.library.opcheck(torch.ops.crossformer_mm.biased_attention, (qkv, bias))
    torch.library.opcheck(torch.ops.crossformer_mm.biased_attention_backward,
                          (grad, qkv.detach(), bias.detach()))
    out = memory.attend(qkv, bias)
    out.backward(grad)
    got = qkv.grad, bias.grad
    qkv.grad = bias.grad = None
    expected_out = _reference_attention(qkv, bias)
    expected_out.backward(grad)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(got, (qkv.grad, bias.grad), rtol=0, atol=1e-5)


@pytest.mark.parametrize('chunk', [1 << 22, 3 * 2 * 12 * 12])   # one chunk; 3 of 7 groups
def test_low_precision_attention_is_written_out_without_amx(monkeypatch, chunk):
    """In bfloat16 on a CPU without AMX the CPU path is matmul, softmax, matmul in chunks of
    groups (the fused kernel computes in float32 inside), laid out as the fused kernel's output,
    in training too."""
    monkeypatch.setattr(memory, 'CHUNK_ELEMENTS', chunk)
    monkeypatch.setattr(precision, 'AMX_DTYPES', frozenset())
    qkv = torch.randn(7, 12, 3, 2, 8).bfloat16().requires_grad_()
    bias = torch.randn(2, 12, 12, requires_grad=True)
    expected = _reference_attention(qkv.detach(), bias.detach().bfloat16())
    with torch.no_grad():
        out = memory.attend(qkv, bias)
    assert out.dtype == torch.bfloat16 and out.transpose(1, 2).is_contiguous()
    assert torch.equal(out, expected)   # the same ops in the same dtype
    monkeypatch.setattr(memory, '_fused_attention', None)   # not called in bfloat16 on CPU
    assert torch.equal(memory.attend(qkv, bias), expected)   # forward of _biased_attention
    monkeypatch.undo()
    monkeypatch.setattr(memory, '_attend_in_chunks', None)   # float32 keeps the fused kernel
    with torch.no_grad():
        memory.attend(qkv.float(), bias)


def test_low_precision_attention_takes_the_fused_kernel_with_amx(monkeypatch):
    """With AMX for bfloat16 the fused kernel computes in it: inference and training forward."""
    monkeypatch.setattr(precision, 'AMX_DTYPES', frozenset({torch.bfloat16}))
    monkeypatch.setattr(memory, '_attend_in_chunks', None)
    qkv = torch.randn(7, 12, 3, 2, 8).bfloat16().requires_grad_()
    bias = torch.randn(2, 12, 12, requires_grad=True)
    expected = _reference_attention(qkv.detach().float(), bias.detach().bfloat16().float())
    with torch.no_grad():
        out = memory.attend(qkv, bias)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=2e-2)
    torch.testing.assert_close(memory.attend(qkv, bias), out, rtol=0, atol=0)


def _saved_shapes(fn, *args) -> list:
    """The shapes of the tensors autograd keeps for the backward pass of ``fn(*args)``."""
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(t.shape) or t,
                                                  lambda t: t):
        fn(*args)
    return shapes


def test_training_keeps_no_attention_probabilities():
    qkv = torch.randn(7, 12, 3, 2, 8, requires_grad=True)
    bias = torch.randn(2, 12, 12, requires_grad=True)
    probabilities = (7, 2, 12, 12)   # groups, heads, N, N
    assert probabilities not in _saved_shapes(memory.attend, qkv, bias)
    assert probabilities in _saved_shapes(_reference_attention, qkv, bias)


def _plain_mlp(tokens, fc1, fc2):
    return fc2(F.gelu(fc1(tokens)))


@pytest.mark.parametrize('dtype', [None, torch.bfloat16])
def test_mlp_keeps_its_hidden_activation_once(monkeypatch, dtype):
    """Same outputs and gradients as plain autograd, with one (tokens, 4C) tensor kept, not two."""
    monkeypatch.setattr(memory, 'CHUNK_ELEMENTS', 3 * 32)   # 3 tokens at a time
    fc1, fc2 = nn.Linear(8, 32), nn.Linear(32, 8)
    x = torch.randn(10, 8, requires_grad=True)

    def run(mlp):
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = mlp(x, fc1, fc2)
        out.backward(torch.ones_like(out))
        grads = [x.grad] + [p.grad for p in (*fc1.parameters(), *fc2.parameters())]
        x.grad = None
        for p in (*fc1.parameters(), *fc2.parameters()):
            p.grad = None
        return out, grads

    tol = 1e-6 if dtype is None else 2e-2
    torch.testing.assert_close(run(memory.gelu_mlp), run(_plain_mlp), rtol=tol, atol=tol)
    for mlp, kept in ((memory.gelu_mlp, 1), (_plain_mlp, 2)):
        shapes = _saved_shapes(mlp, x, fc1, fc2)
        assert [shape.numel() for shape in shapes].count(10 * 32) == kept
    with torch.no_grad():   # inference: 3 tokens at a time, the GELU in place
        torch.testing.assert_close(memory.gelu_mlp(x, fc1, fc2), _plain_mlp(x, fc1, fc2))


@pytest.mark.parametrize('dtype', [None, torch.bfloat16])
def test_compiled_inference_mlp_is_an_op(monkeypatch, dtype):
    """Under torch.compile, inference's chunked MLP is an op of its own (a symbolic number of
    tokens makes a symbolic number of chunks; fake kernel checked by opcheck) that computes what
    eager does, in autocast's dtype under autocast."""
    monkeypatch.setattr(memory, 'CHUNK_ELEMENTS', 3 * 32)   # 3 tokens at a time
    fc1, fc2 = nn.Linear(8, 32), nn.Linear(32, 8)
    x = torch.randn(10, 8)
    weights = [p.detach() for p in (*fc1.parameters(), *fc2.parameters())]
    torch.library.opcheck(torch.ops.crossformer_mm.gelu_mlp, (x, *weights))
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm
    torch._dynamo.reset()
    run = torch.compile(memory.gelu_mlp, backend=backend, dynamic=True)
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        for tokens in (x, torch.randn(7, 8)):
            out, ref = run(tokens, fc1, fc2), memory.gelu_mlp(tokens, fc1, fc2)
            assert out.dtype == ref.dtype == (dtype or torch.float32)
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
    op = torch.ops.crossformer_mm.gelu_mlp
    assert sum(n.target in (op, op.default) for g in graphs for n in g.graph.nodes) == 1
    assert len(graphs) == 1


def test_permuted_tokens_have_the_gradient_of_indexing():
    """An op of its own (fake kernel and autograd checked by opcheck) whose gradient equals
    indexing's."""
    x = torch.randn(6, 4, requires_grad=True)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(6)
    torch.library.opcheck(torch.ops.crossformer_mm.permute_tokens, (x, order, inverse))
    grad = torch.randn(6, 4)
    memory.permute_tokens(x, order, inverse).backward(grad)
    got, x.grad = x.grad, None
    x[order].backward(grad)
    assert torch.equal(got, x.grad)


def test_the_ffn_is_fc1_gelu_fc2_with_the_residual():
    ffn = CrossFormerFFN(8, 32, drop_path=0.).eval()
    assert [name for name, _ in ffn.named_parameters()] == [
        'layers.0.0.weight', 'layers.0.0.bias', 'layers.1.weight', 'layers.1.bias']
    x, identity = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    with torch.no_grad():
        expected = identity + _plain_mlp(x, ffn.layers[0][0], ffn.layers[1])
        torch.testing.assert_close(ffn(x, identity), expected)
