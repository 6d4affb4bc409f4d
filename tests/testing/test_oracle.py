"""The production backbone against the plain oracle of crossformer_mm.testing.oracle."""
import pytest
import torch

from crossformer_mm import CrossFormer
from crossformer_mm.testing import OracleCrossFormer
from crossformer_mm.testing.oracle import group, group_geometry, padding_mask, ungroup

TINY = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], group_size=[4, 4, 3, 3],
            interval=[4, 2, 2, 1], with_acl=False)


def tiny(**kwargs) -> CrossFormer:
    torch.manual_seed(0)
    arch = dict(TINY, **kwargs.pop('arch', {}))
    model = CrossFormer(arch, drop_path_rate=0., **kwargs)
    for p in model.parameters():  # LayerNorms start at 1 / 0: perturb so they count
        p.data.add_(torch.randn_like(p) * 0.02)
    return model


def assert_outputs_close(outs, refs, tol=1e-4):
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize('h,w,sda,lda', [
    (8, 8, (4, 1), (4, 2)),      # divisible
    (9, 10, (4, 1), (4, 2)),     # padded
    (4, 8, (8, 1), (8, 1)),      # min side == G: one whole-map square SDA group
    (3, 9, (9, 1), (9, 1)),      # wide
    (11, 2, (11, 1), (11, 1)),   # tall
])
def test_group_geometry(h, w, sda, lda):
    """The official rule as the oracle applies it, with G = 4 and I = 2: (G, I)."""
    assert group_geometry(h, w, 4, 2, lda=False) == sda
    assert group_geometry(h, w, 4, 2, lda=True) == lda


def test_lda_groups_take_tokens_i_apart_within_spans():
    # A 4 x 8 map, G = 2, I = 2: two spans of 4 columns, 8 groups of 2 x 2 tokens.
    x = torch.arange(32).view(1, 4, 8, 1)
    groups = group(x, 2, 2)[..., 0]
    assert groups.shape == (8, 4)
    assert groups[:3].tolist() == [[0, 2, 16, 18], [1, 3, 17, 19], [8, 10, 24, 26]]
    assert groups[4].tolist() == [4, 6, 20, 22]
    assert torch.equal(ungroup(group(x, 2, 2), 2, 2, 4, 8), x)


def test_padding_mask_masks_padded_keys_only():
    # A 3 x 5 map padded to 4 x 8 (G = 2, I = 2): row 3 and columns 5-7 are padding.
    mask = padding_mask(4, 8, 1, 3, size=2, dilation=2, device=torch.device('cpu'))
    assert mask.shape == (8, 4, 4)
    padded = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1],
                           [0, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]],
                          dtype=torch.bool)
    assert torch.equal(mask == -1e6, padded[:, None, :].expand(8, 4, 4))
    assert torch.equal(mask == 0, ~padded[:, None, :].expand(8, 4, 4))


@pytest.mark.parametrize('shape,group_size,interval', [
    ((1, 3, 128, 128), None, None),                 # no padding anywhere but stage 4
    ((1, 3, 100, 164), None, None),                 # SDA and LDA padding, non-square
    ((2, 3, 96, 160), None, None),                  # batch 2
    ((1, 3, 64, 96), [14, 14, 7, 7], [16, 8, 2, 1]),  # whole-map groups (padded square)
    ((1, 3, 224, 96), [7, 7, 7, 7], [8, 4, 2, 1]),  # tall; stage 1 LDA padded, I = 1 in stage 4
])
def test_production_equals_oracle(shape, group_size, interval):
    arch = {k: v for k, v in dict(group_size=group_size, interval=interval).items() if v}
    model = tiny(arch=arch).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        assert_outputs_close(model(x), OracleCrossFormer(model)(x))


def test_production_equals_oracle_pp_with_acl():
    model = tiny(arch=dict(with_acl=True, depths=[3, 4, 2, 2])).eval()
    x = torch.randn(1, 3, 100, 68)
    with torch.no_grad():
        assert_outputs_close(model(x), OracleCrossFormer(model)(x))


@pytest.mark.parametrize('with_cp', [False, True])
def test_training_gradients_equal_oracle(with_cp):
    model = tiny(with_cp=with_cp).train()
    x = torch.randn(2, 3, 100, 132)
    grads = []
    for module in (model, OracleCrossFormer(model)):
        model.zero_grad()
        sum((out * torch.linspace(-1, 1, out.shape[1])[:, None, None]).sum()
            for out in module(x)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f'{name}: {m}')


def test_bf16_autocast_inference_is_close_to_fp32():
    model = tiny().eval()
    x = torch.randn(1, 3, 100, 132)
    with torch.no_grad():
        refs = OracleCrossFormer(model)(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape and torch.isfinite(out).all()
        # bf16 keeps 8 bits of mantissa: a few percent of the output's scale.
        assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
