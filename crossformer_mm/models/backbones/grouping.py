"""How SDA and LDA split a feature map into attention groups.

A :class:`Grouping` is built once per stage and per distinct geometry in a forward pass and is
shared by every block that uses it: the relative offsets that feed the dynamic position bias,
their gather index, and the padding masks depend only on the geometry, not on a block's weights.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor

#: Added to the attention logits of padded keys (the official code's -1e6, kept finite in fp16).
PAD_LOGIT = -1e6


@dataclass(frozen=True)
class Region:
    """A rectangle of the group grid whose groups share one key-padding pattern."""
    rows: slice
    cols: slice
    key_mask: Optional[Tensor]  # (N,) additive mask over a group's keys, None without padding


@dataclass(frozen=True)
class Grouping:
    """The groups of one H x W map for SDA (G x G windows) or LDA (tokens I apart).

    Padding goes to the bottom and right so that H and W divide into groups. Only the last row
    and column of the group grid (SDA) or the last offsets within an interval (LDA) see padding,
    so the grid splits into at most four regions, each with one (N,) key mask.
    """
    kind: str                     # 'sda' or 'lda'
    size: int                     # G for SDA, I for LDA
    height: int                   # H, unpadded
    width: int                    # W, unpadded
    pad: Tuple[int, int]          # (bottom, right)
    group_shape: Tuple[int, int]  # (gh, gw): tokens per group along H and W
    grid: Tuple[int, int]         # groups along H and W (for LDA: I x I)
    regions: List[Region]
    offsets: Tensor               # ((2gh-1)(2gw-1), 2) float relative offsets (dy, dx) for DPB
    index: Tensor                 # (N, N) long: offsets row of each (query, key) pair

    @staticmethod
    def build(kind: str, height: int, width: int, group_size: int, interval: int,
              device: torch.device) -> 'Grouping':
        """Groups for one block type; a map no larger than G is one whole-map SDA group."""
        if min(height, width) <= group_size:
            kind, size = 'sda', max(height, width)
        else:
            size = group_size if kind == 'sda' else interval
        pad_b, pad_r = -height % size, -width % size
        hp, wp = height + pad_b, width + pad_r
        if kind == 'sda':
            group_shape, grid = (size, size), (hp // size, wp // size)
            # Padding lies in the last group row/column, as its last pad_b rows / pad_r cols.
            row_split = grid[0] - (pad_b > 0)
            col_split = grid[1] - (pad_r > 0)
            masked = (pad_b, pad_r)
        else:
            group_shape, grid = (hp // size, wp // size), (size, size)
            # Groups at row offset >= I - pad_b have their last token row in the padding.
            row_split, col_split = size - pad_b, size - pad_r
            masked = (int(pad_b > 0), int(pad_r > 0))
        regions = _regions(grid, (row_split, col_split), group_shape, masked, device)
        offsets, index = _relative_offsets(*group_shape, device)
        return Grouping(kind, size, height, width, (pad_b, pad_r), group_shape, grid, regions,
                        offsets, index)

    @property
    def num_tokens(self) -> int:
        return self.group_shape[0] * self.group_shape[1]

    def group(self, x: Tensor) -> Tensor:
        """(B, Hp, Wp, D) -> (B, R, C, gh, gw, D), a view: R x C groups of gh x gw tokens."""
        b, d = x.shape[0], x.shape[-1]
        (gh, gw), (r, c) = self.group_shape, self.grid
        if self.kind == 'sda':
            return x.view(b, r, gh, c, gw, d).permute(0, 1, 3, 2, 4, 5)
        return x.view(b, gh, r, gw, c, d).permute(0, 2, 4, 1, 3, 5)

    def ungroup(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`group`, cropped to the unpadded (B, H, W, D)."""
        b, r, c, gh, gw, d = x.shape
        if self.kind == 'sda':
            x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, r * gh, c * gw, d)
        else:
            x = x.permute(0, 3, 1, 4, 2, 5).reshape(b, gh * r, gw * c, d)
        return x[:, :self.height, :self.width]


def _regions(grid: Tuple[int, int], split: Tuple[int, int], group_shape: Tuple[int, int],
             masked: Tuple[int, int], device: torch.device) -> List[Region]:
    """Split the group grid at ``split`` into regions with and without padded keys."""
    gh, gw = group_shape
    row_parts = [(slice(0, split[0]), 0), (slice(split[0], grid[0]), masked[0])]
    col_parts = [(slice(0, split[1]), 0), (slice(split[1], grid[1]), masked[1])]
    regions = []
    for rows, pad_rows in row_parts:
        for cols, pad_cols in col_parts:
            if rows.start == rows.stop or cols.start == cols.stop:
                continue
            key_mask = None
            if pad_rows or pad_cols:
                pad = torch.zeros(gh, gw, dtype=torch.bool, device=device)
                pad[gh - pad_rows:] = True
                pad[:, gw - pad_cols:] = True
                key_mask = torch.zeros(gh * gw, device=device).masked_fill(pad.flatten(),
                                                                            PAD_LOGIT)
            regions.append(Region(rows, cols, key_mask))
    return regions


def _relative_offsets(gh: int, gw: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Every relative offset in a gh x gw group, and the offset index of each token pair."""
    dy = torch.arange(1 - gh, gh, device=device)
    dx = torch.arange(1 - gw, gw, device=device)
    offsets = torch.stack(torch.meshgrid(dy, dx, indexing='ij'), -1).flatten(0, 1).float()
    coords = torch.stack(torch.meshgrid(torch.arange(gh, device=device),
                                        torch.arange(gw, device=device), indexing='ij'))
    coords = coords.flatten(1)                                  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]               # (2, N, N)
    index = (rel[0] + gh - 1) * (2 * gw - 1) + (rel[1] + gw - 1)
    return offsets, index
