"""A plain CrossFormer attention, written as the official code computes it.

:class:`OracleCrossFormer` wraps a built :class:`~crossformer_mm.CrossFormer` and runs it with
the same weights, but every block recomputes its own geometry, pads the map to whole spans of
G x I tokens (G for SDA, one square group for a map no larger than G), copies it into contiguous
groups of G x G tokens, evaluates its dynamic position bias MLP on the offset grid, builds the
explicit (groups, N, N) padding mask and attends with matmul, softmax and matmul. The production
path must match it (``tests/testing/test_oracle.py``); ``tools/benchmark.py`` measures both.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The official code's logit for padded keys.
NEG_INF = -1e6


def group_geometry(height: int, width: int, group_size: int, interval: int,
                   lda: bool) -> Tuple[int, int]:
    """``(G, I)`` as the official code picks them: SDA is I = 1, and a map no larger than G is
    one square SDA group of side max(H, W)."""
    if min(height, width) <= group_size:
        return max(height, width), 1
    return group_size, interval if lda else 1


def group(x: Tensor, size: int, dilation: int) -> Tensor:
    """Padded (B, Hp, Wp, C) -> (B * groups, G * G, C): G x G tokens ``dilation`` apart.

    Every span of G * I rows (columns) holds I groups whose rows (columns) interleave.
    """
    b, hp, wp, c = x.shape
    span = size * dilation
    x = x.reshape(b, hp // span, size, dilation, wp // span, size, dilation, c)
    return x.permute(0, 1, 4, 3, 6, 2, 5, 7).reshape(-1, size * size, c)


def ungroup(x: Tensor, size: int, dilation: int, hp: int, wp: int) -> Tensor:
    """Inverse of :func:`group`: (B * groups, G * G, C) -> (B, Hp, Wp, C)."""
    span, c = size * dilation, x.shape[-1]
    x = x.reshape(-1, hp // span, wp // span, dilation, dilation, size, size, c)
    return x.permute(0, 1, 5, 3, 2, 6, 4, 7).reshape(-1, hp, wp, c)


def position_bias(dpb: nn.Module, gh: int, gw: int) -> Tensor:
    """The block's DPB MLP on every offset of a gh x gw group: (heads, N, N)."""
    device = dpb.proj.weight.device
    dy, dx = torch.arange(1 - gh, gh, device=device), torch.arange(1 - gw, gw, device=device)
    offsets = torch.stack(torch.meshgrid(dy, dx, indexing='ij')).flatten(1).t().float()
    coords = torch.stack(torch.meshgrid(torch.arange(gh, device=device),
                                        torch.arange(gw, device=device), indexing='ij'))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    index = (rel[..., 0] + gh - 1) * (2 * gw - 1) + rel[..., 1] + gw - 1
    table = dpb.layers(dpb.proj(offsets))
    return table[index.view(-1)].view(gh * gw, gh * gw, -1).permute(2, 0, 1)


def padding_mask(hp: int, wp: int, pad_b: int, pad_r: int, size: int, dilation: int,
                 device: torch.device) -> Tensor:
    """(groups, N, N) additive mask: NEG_INF on padded keys, as the official code builds it."""
    pad = torch.zeros(1, hp, wp, 1, device=device)
    if pad_b:
        pad[:, -pad_b:] = -1
    if pad_r:
        pad[:, :, -pad_r:] = -1
    pad = group(pad, size, dilation).transpose(1, 2)    # (groups, 1, N): one column per key
    n = pad.shape[-1]
    return torch.zeros(pad.shape[0], n, n, device=device).masked_fill(pad < 0, NEG_INF)


def attention(attn: nn.Module, x: Tensor, size: int, dilation: int) -> Tensor:
    """The official group attention on a (B, H, W, C) map with the weights of ``attn``."""
    b, h, w, c = x.shape
    pad_b, pad_r = -h % (size * dilation), -w % (size * dilation)
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    hp, wp = h + pad_b, w + pad_r
    x = group(x, size, dilation)
    heads, n = attn.num_heads, size * size
    q, k, v = attn.qkv(x).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = (q * (c // heads)**-0.5) @ k.transpose(-2, -1)
    logits = logits + position_bias(attn.dpb, size, size).unsqueeze(0)
    if pad_b or pad_r:
        mask = padding_mask(hp, wp, pad_b, pad_r, size, dilation, x.device)
        logits = (logits.view(b, -1, heads, n, n) + mask.unsqueeze(1)).view(-1, heads, n, n)
    x = (logits.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
    x = ungroup(attn.proj(x), size, dilation, hp, wp)
    return x[:, :h, :w]


def block_forward(block: nn.Module, x: Tensor, size: int, dilation: int) -> Tensor:
    """A CrossFormer block on (B, H, W, C) with the oracle attention."""
    x = x + block.drop_path(attention(block.attn, block.norm1(x), size, dilation))
    fc1, fc2 = block.ffn.layers[0][0], block.ffn.layers[1]
    x = x + block.ffn.drop_path(fc2(F.gelu(fc1(block.norm2(x)))))   # plain autograd ops
    return x if block.acl is None else block.acl(x)


class OracleCrossFormer(nn.Module):
    """Runs ``model`` (a :class:`~crossformer_mm.CrossFormer`) with the oracle attention.

    The weights are shared, not copied: gradients of a backward pass land in ``model``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple:
        model, outs = self.model, []
        for i, stage in enumerate(model.stages):
            x = stage.cel(x)
            h, w = x.shape[1:3]
            for j, block in enumerate(stage.blocks):
                size, dilation = group_geometry(h, w, stage.group_size, stage.interval,
                                                lda=j % 2 == 1)
                x = block_forward(block, x, size, dilation)
            if i in model.out_indices:
                out = x if model.out_norm_cfg is None else getattr(model, f'norm{i}')(x)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
