"""Grouping: which tokens SDA and LDA put together, and which keys they mask."""
import pytest
import torch

from crossformer_mm.models.backbones.grouping import PAD_LOGIT, Grouping


def token_groups(grouping: Grouping) -> torch.Tensor:
    """For every region, the (groups, N) map positions (-1 for padding) it attends over."""
    hp, wp = grouping.padded_size
    pos = torch.full((hp, wp), -1)
    pos[:grouping.height, :grouping.width] = torch.arange(
        grouping.height * grouping.width).view(grouping.height, grouping.width)
    grouped = grouping.group(pos[None, :, :, None])
    return [(grouped[(slice(None), r.rows[0], r.rows[1], r.cols[0], r.cols[1])].reshape(
        -1, grouping.num_tokens), r.key_mask) for r in grouping.regions]


@pytest.mark.parametrize('kind, h, w, g, i', [
    ('sda', 56, 56, 7, 8), ('lda', 56, 56, 7, 8), ('sda', 14, 20, 7, 2), ('lda', 14, 20, 7, 2),
    ('lda', 56, 56, 4, 4), ('lda', 200, 304, 14, 16), ('sda', 200, 304, 14, 16),
    ('lda', 57, 35, 4, 3), ('sda', 7, 10, 7, 1), ('lda', 15, 17, 14, 16),
])
def test_every_token_in_one_group_and_only_padding_masked(kind, h, w, g, i):
    grouping = Grouping.build(kind, h, w, g, i, torch.device('cpu'))
    seen = []
    for tokens, key_mask in token_groups(grouping):
        padded = tokens < 0
        if key_mask is None:
            assert not padded.any()
        else:
            assert torch.equal(key_mask == PAD_LOGIT, padded[0])
            assert (padded == padded[0]).all()   # one mask fits the whole region
        seen.append(tokens[~padded])
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(h * w))


def test_sda_groups_are_adjacent_and_lda_groups_are_strided():
    sda = Grouping.build('sda', 16, 16, 4, 4, torch.device('cpu'))
    lda = Grouping.build('lda', 16, 16, 4, 4, torch.device('cpu'))
    (sda_tokens, _), = token_groups(sda)
    (lda_tokens, _), = token_groups(lda)
    assert sda_tokens[0].tolist() == [0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51]
    assert lda_tokens[0].tolist() == [0, 4, 8, 12, 64, 68, 72, 76, 128, 132, 136, 140, 192, 196,
                                      200, 204]


def test_lda_groups_span_g_times_i():
    """An LDA group holds G x G tokens I apart: a 32-wide map with G=4, I=4 has two spans."""
    lda = Grouping.build('lda', 32, 32, 4, 4, torch.device('cpu'))
    assert lda.group_shape == (4, 4) and lda.spans == (2, 2) and lda.num_groups == 64
    (tokens, _), = token_groups(lda)
    assert tokens[0].tolist()[:4] == [0, 4, 8, 12]


def test_small_maps_are_one_whole_map_group():
    grouping = Grouping.build('lda', 7, 10, 7, 1, torch.device('cpu'))
    assert grouping.kind == 'sda' and grouping.group_shape == (7, 10)
    assert grouping.num_groups == 1 and grouping.padded_size == (7, 10)


def test_relative_offsets_index_matches_the_pairs():
    grouping = Grouping.build('sda', 9, 9, 3, 1, torch.device('cpu'))
    coords = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(3), indexing='ij'),
                         -1).view(-1, 2)
    rel = coords[:, None] - coords[None]
    assert torch.equal(grouping.offsets[grouping.index], rel.float())
