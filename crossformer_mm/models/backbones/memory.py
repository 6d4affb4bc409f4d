"""Autograd functions that make the backbone train and infer in less memory, and so faster.

Each computes exactly what plain PyTorch ops compute, keeping less for the backward pass or
building smaller temporaries (a large fresh tensor costs more in new memory pages than in
arithmetic):

* :func:`permute_tokens` (``x[order]``): the gradient is a gather by the inverse permutation,
  not autograd's scatter-add (5x faster at stage 1 of a detector), and compiled graphs call it
  as it is.
* :func:`attend`: PyTorch's fused CPU attention has no gradient for its mask, so with the DPB's
  learnt bias it would fall back to the math path and keep every (groups, heads, N, N)
  probability; :func:`_biased_attention` runs the fused kernel forward and recomputes the
  probabilities a few groups at a time in backward, as flash attention does. In bfloat16 /
  float16 the fused CPU kernel computes in float32 inside and gains nothing, except on a CPU
  with AMX for the dtype, so elsewhere attention is written out (matmul, softmax, matmul), a few
  groups at a time (:func:`_attend_in_chunks`).
* :func:`gelu_mlp` (``fc2(gelu(fc1(x)))``): training keeps fc1's output only and recomputes the
  GELU in backward (:class:`_GeluLinear`); inference runs a few thousand tokens at a time with
  the GELU in place (an op under ``torch.compile``).
* :func:`attend_groups`: attention over the regions of a Grouping, and its gradient
  (:func:`attend_groups_backward`) for the ops of a graph of symbolic sizes.

``tests/models/backbones/test_memory.py`` checks each against plain autograd, forward and
gradients (float32, and bfloat16 autocast), and that the large tensors are not kept; the
official-style oracle (``crossformer_mm/testing/oracle.py``) checks the whole backbone.
"""
from typing import TYPE_CHECKING, Callable, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import precision

if TYPE_CHECKING:
    from .grouping import Grouping

#: Values computed at a time where a large temporary would cost more in fresh memory pages than
#: in arithmetic, or hold memory that a backward pass does not need (16 MiB in float32).
CHUNK_ELEMENTS = 1 << 22


def _autograd() -> bool:
    """Whether a backward pass may follow: the memory-saving autograd functions below are
    then worth it. Not while a FLOP counter traces the model, which sees only aten ops."""
    return torch.is_grad_enabled() and not torch.jit.is_tracing()


def _chunk_rows(width: int) -> int:
    """Rows of ``width`` values that make one chunk of :data:`CHUNK_ELEMENTS`."""
    return max(1, CHUNK_ELEMENTS // width)


@torch.library.custom_op('crossformer_mm::permute_tokens', mutates_args=())
def _permute_tokens(x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
    """``x[order]`` for a permutation ``order`` whose inverse is ``inverse``."""
    return x.index_select(0, order)


@_permute_tokens.register_fake
def _(x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
    return x.new_empty((order.shape[0], *x.shape[1:]))


def _permute_tokens_setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    ctx.save_for_backward(*inputs[1:])


def _permute_tokens_grad(ctx, grad: Tensor) -> tuple:
    order, inverse = ctx.saved_tensors
    return _permute_tokens(grad, inverse, order), None, None


_permute_tokens.register_autograd(_permute_tokens_grad,
                                  setup_context=_permute_tokens_setup_context)


def permute_tokens(x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
    """The rows of (tokens, C) ``x`` in ``order``, a permutation whose inverse is ``inverse``.

    An op of its own where a backward pass may follow (its gradient is the gather by
    ``inverse``) and under ``torch.compile``, which calls it as it is instead of fusing the
    gather into its neighbours: a compiled training step of CrossFormer-S (dense G / I, 2 AVX2
    cores, one process, alternating runs) went from 0.83x to 0.92x eager at 800 x 1216, and
    from 1.04x to 1.20x at 512 x 512.
    """
    if _autograd() or torch.compiler.is_compiling():
        return _permute_tokens(x, order, inverse)
    return x.index_select(0, order)


def _probabilities(q: Tensor, k: Tensor, bias: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias) of (..., N, d) queries and keys: attention's weights."""
    return torch.matmul(q * q.shape[-1]**-0.5, k.transpose(-2, -1)).add_(bias).softmax(-1)


def _heads_last(qkv: Tensor) -> Tensor:
    """An empty (groups, heads, N, d) output laid out (groups, N, heads, d), as the fused
    kernel's is, so that merging the heads is free."""
    groups, n, _, heads, d = qkv.shape
    return qkv.new_empty(groups, n, heads, d).transpose(1, 2)


@torch.library.custom_op('crossformer_mm::biased_attention', mutates_args=())
def _biased_attention(qkv: Tensor, bias: Tensor) -> Tensor:
    """Attention with a learnt bias, for training on CPU: see :func:`attend`.

    The forward pass runs :func:`attend_cpu`; the backward pass recomputes the probabilities a
    few groups at a time, as flash attention does, instead of keeping all of them. An op of its
    own, so that ``torch.compile`` calls it as it is: traced, forward and backward ran 2.5x
    slower (stage 1 of CrossFormer-S at 800 x 1216, dense G / I, 2 AVX2 cores).
    """
    # A mask that requires grad, even in no-grad mode, sends PyTorch to its math path.
    out = attend_cpu(qkv, bias.detach())
    return out if out.transpose(1, 2).is_contiguous() else _heads_last(qkv).copy_(out)


@_biased_attention.register_fake
def _(qkv: Tensor, bias: Tensor) -> Tensor:
    return _heads_last(qkv)


@torch.library.custom_op('crossformer_mm::biased_attention_backward', mutates_args=())
def _biased_attention_backward(grad_out: Tensor, qkv: Tensor,
                               bias: Tensor) -> Tuple[Tensor, Tensor]:
    """The gradients of :func:`_biased_attention` for (qkv, bias), contiguous."""
    scale = qkv.shape[-1]**-0.5
    grad_qkv = qkv.new_empty(qkv.shape)
    grad_q, grad_k, grad_v = grad_qkv.permute(2, 0, 3, 1, 4)
    grad_bias = bias.new_zeros(bias.shape, dtype=torch.float32)
    step = _chunk_rows(bias.numel())   # groups whose probabilities are recomputed at once
    for i in range(0, qkv.shape[0], step):
        chunk = slice(i, i + step)
        q, k, v = (t.contiguous() for t in qkv[chunk].permute(2, 0, 3, 1, 4))
        grad = grad_out[chunk].contiguous()
        p = _probabilities(q, k, bias.to(q.dtype))
        grad_p = grad @ v.transpose(-2, -1)
        grad_logits = p * (grad_p - (p * grad_p).sum(-1, keepdim=True))
        grad_bias += grad_logits.sum(0, dtype=torch.float32)
        grad_q[chunk] = grad_logits @ k * scale
        grad_k[chunk] = grad_logits.transpose(-2, -1) @ q * scale
        grad_v[chunk] = p.transpose(-2, -1) @ grad
    return grad_qkv, grad_bias.to(bias.dtype)


@_biased_attention_backward.register_fake
def _(grad_out: Tensor, qkv: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    return qkv.new_empty(qkv.shape), bias.new_empty(bias.shape)


def _biased_attention_setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _biased_attention_grad(ctx, grad_out: Tensor) -> Tuple[Tensor, Tensor]:
    return _biased_attention_backward(grad_out, *ctx.saved_tensors)


_biased_attention.register_autograd(_biased_attention_grad,
                                    setup_context=_biased_attention_setup_context)


def _fused_attention(qkv: Tensor, bias: Tensor) -> Tensor:
    """PyTorch's ``scaled_dot_product_attention`` with the bias as its mask."""
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    # A 4-D mask lets PyTorch pick its fused kernels (a 3-D one falls back to math).
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype)[None])


def _attend_in_chunks(qkv: Tensor, bias: Tensor) -> Tensor:
    """Matmul, softmax, matmul a few groups at a time, in qkv's dtype, into one output laid
    out as the fused kernel's (:func:`_heads_last`)."""
    bias = bias.to(qkv.dtype)
    out = _heads_last(qkv)
    step = _chunk_rows(bias.numel())   # groups whose probabilities are computed at once
    for i in range(0, qkv.shape[0], step):
        q, k, v = qkv[i:i + step].permute(2, 0, 3, 1, 4)
        out[i:i + step] = torch.matmul(_probabilities(q, k, bias), v)
    return out


def attend_cpu(qkv: Tensor, bias: Tensor) -> Tensor:
    """The fused kernel, in float32 and in a dtype the CPU has AMX for. Elsewhere, in bfloat16 /
    float16, that kernel computes in float32 inside and gains nothing, while written-out matmuls
    run at the dtype's speed (CrossFormer-S, bf16 inference at 800 x 1216, 2 cores: written out
    1.07x faster than the fused kernel on a Zen 4 with AVX-512 bf16; fused 1.10x faster on a
    Xeon with AMX)."""
    if qkv.dtype in (torch.bfloat16, torch.float16) and qkv.dtype not in precision.AMX_DTYPES:
        return _attend_in_chunks(qkv, bias)
    return _fused_attention(qkv, bias)


def attend(qkv: Tensor, bias: Tensor) -> Tensor:
    """Attention within groups: (groups, N, 3, heads, d) qkv and a (heads, N, N) bias ->
    (groups, heads, N, d).

    PyTorch's fused CPU kernel has no gradient for its mask, so when the DPB's bias needs one
    the kernel would fall back to the math path, which keeps every (groups, heads, N, N)
    probability for the backward pass; :func:`_biased_attention` avoids that. CPU inference
    and that function's forward pass take :func:`attend_cpu`.
    """
    if qkv.device.type != 'cpu':
        return _fused_attention(qkv, bias)
    if bias.requires_grad and _autograd():
        return _biased_attention(qkv, bias)
    if torch.is_grad_enabled():   # autograd through the fused kernel keeps nothing large
        return _fused_attention(qkv, bias)
    return attend_cpu(qkv, bias)


def _by_region(grouping: 'Grouping', *tokens: Tensor):
    """(region, and each of ``tokens`` cut to that region's rows) for every region of
    ``grouping``: tensors of (tokens, ...) rows in group order."""
    sizes = [grouping.batch * region.groups * region.num_tokens for region in grouping.regions]
    return zip(grouping.regions, *(t.split(sizes) for t in tokens))


def attend_groups(qkv: Tensor, table: Tensor, grouping: 'Grouping',
                  attention: Callable[[Tensor, Tensor], Tensor] = attend) -> Tensor:
    """Attention within the groups of ``grouping``: (tokens, 3C) ``qkv`` in group order and
    the DPB's (heads, offsets) ``table`` -> (tokens, C), a region (groups of one shape) at a
    time."""
    heads, c = table.shape[0], qkv.shape[-1] // 3
    outs = [attention(part.view(-1, region.num_tokens, 3, heads, c // heads),
                      table[:, region.offset_index]).transpose(1, 2).reshape(-1, c)
            for region, part in _by_region(grouping, qkv)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def attend_groups_backward(grad: Tensor, qkv: Tensor, table: Tensor,
                           grouping: 'Grouping') -> Tuple[Tensor, Tensor]:
    """The gradients of :func:`attend_groups` for (qkv, table): each region's as
    :func:`_biased_attention`'s, its bias gradient summed into the table's offsets."""
    heads, c = table.shape[0], qkv.shape[-1] // 3
    grad_table = torch.zeros_like(table, dtype=torch.promote_types(table.dtype, torch.float32))
    grads = []
    for region, part, grad_part in _by_region(grouping, qkv, grad):
        n, d = region.num_tokens, c // heads
        grad_qkv, grad_bias = _biased_attention_backward(
            grad_part.view(-1, n, heads, d).transpose(1, 2), part.view(-1, n, 3, heads, d),
            table[:, region.offset_index])
        grad_table.index_add_(1, region.offset_index.flatten(),
                              grad_bias.flatten(1).to(grad_table.dtype))
        grads.append(grad_qkv.view(-1, 3 * c))
    return torch.cat(grads), grad_table.to(table.dtype)


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h))`` that keeps only ``h`` for the backward pass and recomputes the
    (cheap, element-wise) GELU there: autograd would keep both, the two widest activations."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(h, weight)
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, weight = ctx.saved_tensors
        # Under autocast h and grad are low precision while weight is not: cast explicitly.
        grad_weight = grad.t() @ F.gelu(h).to(grad.dtype)
        grad_h = torch.ops.aten.gelu_backward(grad @ weight.to(grad.dtype), h)
        return (grad_h, grad_weight.to(weight.dtype),
                grad.sum(0, dtype=torch.float32).to(weight.dtype))


def gelu_mlp(tokens: Tensor, fc1: nn.Linear, fc2: nn.Linear) -> Tensor:
    """``fc2(gelu(fc1(tokens)))`` for (tokens, C) ``tokens``, keeping one copy of the widest
    activation: fc1's output for the backward pass, or chunks of it in inference."""
    if torch.is_grad_enabled():
        return _GeluLinear.apply(fc1(tokens), fc2.weight, fc2.bias)
    weights = fc1.weight, fc1.bias, fc2.weight, fc2.bias
    if not torch.compiler.is_compiling():
        return _chunked_gelu_mlp(tokens, *weights)
    # An op under torch.compile: chunks of a symbolic number of tokens would fix the number.
    # Autocast does not reach into a custom op: the op gets its inputs in autocast's dtype.
    if torch.is_autocast_enabled(tokens.device.type):
        dtype = torch.get_autocast_dtype(tokens.device.type)
        tokens, weights = tokens.to(dtype), [w.to(dtype) for w in weights]
    return _gelu_mlp(tokens, *weights)


def _chunked_gelu_mlp(tokens: Tensor, weight1: Tensor, bias1: Tensor, weight2: Tensor,
                      bias2: Tensor) -> Tensor:
    """Inference's ``fc2(gelu(fc1(tokens)))``, a few thousand tokens at a time, the GELU in
    place."""
    return torch.cat([
        F.linear(torch.ops.aten.gelu_(F.linear(part, weight1, bias1)), weight2, bias2)
        for part in tokens.split(_chunk_rows(weight1.shape[0]))])


_gelu_mlp = torch.library.custom_op('crossformer_mm::gelu_mlp', _chunked_gelu_mlp,
                                    mutates_args=())


@_gelu_mlp.register_fake
def _(tokens: Tensor, weight1: Tensor, bias1: Tensor, weight2: Tensor, bias2: Tensor) -> Tensor:
    return tokens.new_empty(tokens.shape[0], weight2.shape[0])
