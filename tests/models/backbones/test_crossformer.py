"""CrossFormer backbone: exactness against the official implementation and the mm interface."""
import logging

import pytest
import torch

from crossformer_mm import checkpoint as ckpt_module
from crossformer_mm.models import CrossFormer
from crossformer_mm.models.backbones import crossformer as cf_module
from crossformer_mm.models.backbones.grouping import Grouping
from crossformer_mm.models.backbones.official_keys import official_to_ours
from _reference import load_case, official_keys, ours_to_official, variants

TINY = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 1, 2, 2], group_size=[7, 7, 7, 7],
            interval=[8, 4, 2, 1], with_acl=False)
TINY_PP = dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 1, 2, 2],
               group_size=[4, 4, 14, 7], interval=[4, 2, 1, 1], with_acl=True)

BACKBONE_PARAMS = {
    't': 27262770, 's': 29886858, 'b': 51201018, 'l': 90944136,
    'pp-s': 22811316, 'pp-b': 51224058, 'pp-l': 90974856, 'pp-h': 94935896,
}


def load_golden(name: str):
    """An official golden case and a CrossFormer built from its config with its weights."""
    case = load_case(name)
    cfg = case['config']
    arch = dict(embed_dims=cfg['embed_dim'], depths=cfg['depths'], num_heads=cfg['num_heads'],
                group_size=cfg['group_size'], interval=cfg['crs_interval'], with_acl=cfg['use_acl'])
    classifier = case['logits'] is not None
    model = CrossFormer(arch, drop_path_rate=0.0, out_indices=(3, ) if classifier else
                        (0, 1, 2, 3), out_norm_cfg=dict(type='LN') if classifier else None)
    state = dict(case['state_dict'])
    head = {k: state.pop(k) for k in ('head.weight', 'head.bias') if k in state}
    if classifier:
        state['norm3.weight'], state['norm3.bias'] = state.pop('norm.weight'), state.pop(
            'norm.bias')
    model.load_state_dict(state, strict=True)
    return case, model.eval(), head


@pytest.mark.parametrize('arch', sorted(BACKBONE_PARAMS))
def test_param_counts_equal_official(arch):
    model = CrossFormer(arch)
    assert sum(p.numel() for p in model.parameters()) == BACKBONE_PARAMS[arch]


@pytest.mark.parametrize('arch', sorted(BACKBONE_PARAMS))
def test_official_names_map_to_ours_and_back(arch):
    official = {k: v for k, v in official_keys(arch).items()
                if not k.startswith(('head.', 'norm.'))}
    ours = {k: tuple(v.shape) for k, v in CrossFormer(arch).state_dict().items()}
    assert official_to_ours(official) == ours
    assert {ours_to_official(k) for k in ours} == set(official)


def test_classifier_totals_match_variants_json():
    for arch, info in variants().items():
        model = CrossFormer(arch, out_indices=(3, ), out_norm_cfg=dict(type='LN'))
        dim = model.num_features[-1]
        total = sum(p.numel() for p in model.parameters()) + dim * 1000 + 1000
        assert total == info['params'], arch


def assert_golden(name: str, outputs: list, logits=None) -> None:
    """Every stage output (and the logits) of a golden case to 1e-4; prints the largest errors."""
    case = load_case(name)
    expected = case['stage_outputs'] + ([case['logits']] if logits is not None else [])
    got = list(outputs) + ([logits] if logits is not None else [])
    assert len(got) == len(expected)
    errors = [(a - b).abs().max().item() for a, b in zip(got, expected)]
    print(f'{name}: max |ours - official| per stage{" and logits" * (logits is not None)}: '
          + ', '.join(f'{e:.1e}' for e in errors))
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize('name', ['cls_tiny', 'cls_pp_tiny'])
def test_golden_classifiers(name):
    case, model, head = load_golden(name)
    x, outputs = case['input'], []
    with torch.no_grad():
        for i, stage in enumerate(model.stages):
            x = stage(x)
            # The official stage output includes the next stage's CEL.
            outputs.append((model.stages[i + 1].cel(x) if i < 3 else x).flatten(1, 2))
        feat = model(case['input'])[0].mean((2, 3))
        logits = torch.nn.functional.linear(feat, head['head.weight'], head['head.bias'])
    assert_golden(name, outputs, logits)


@pytest.mark.parametrize('name', ['det_tiny_dense', 'det_tiny_odd'])
def test_golden_dense_backbone(name):
    case, model, _ = load_golden(name)
    with torch.no_grad():
        outs = model(case['input'])
    assert_golden(name, outs)


def test_golden_dense_does_not_depend_on_earlier_inputs():
    case, model, _ = load_golden('det_tiny_dense')
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))  # small maps: whole-map groups everywhere
        outs = model(case['input'])
    assert_golden('det_tiny_dense', outs)


@pytest.mark.parametrize('size', [(32, 32), (61, 97), (224, 320), (100, 45)])
def test_any_input_size(size):
    model = CrossFormer(TINY, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        assert out.shape == (2, 16 * 2**i, h // 4 // 2**i, w // 4 // 2**i)
        assert torch.isfinite(out).all()


def test_batch_elements_are_independent():
    model = CrossFormer(TINY_PP).eval()
    x = torch.randn(3, 3, 72, 88)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
    for a, b in zip(together, alone):
        torch.testing.assert_close(a[1:2], b, rtol=0, atol=1e-5)


@pytest.mark.parametrize('name, preset', [('Tiny', 't'), ('S', 's'), ('PP-Small', 'pp-s')])
def test_arch_aliases_and_case(name, preset):
    def arch(model):
        return (model.embed_dims, model.depths, model.num_heads, model.group_size,
                model.interval, model.with_acl)

    assert arch(CrossFormer(name)) == arch(CrossFormer(preset)) == \
        tuple(CrossFormer.arch_zoo[preset].values())


def test_negative_out_indices_count_from_the_last_stage():
    model = CrossFormer(TINY, out_indices=(-1, 1))
    assert model.out_indices == (3, 1)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]  # in stage order


def test_in_channels():
    model = CrossFormer(TINY, in_channels=4)
    assert [conv.in_channels for conv in model.stages[0].cel.projs] == [4] * 4
    assert [o.shape[1] for o in model(torch.randn(1, 4, 64, 64))] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match=r'expects \(B, 4, H, W\) images, got shape '
                       r'\(1, 3, 64, 64\)'):
        model(torch.randn(1, 3, 64, 64))


def test_out_indices_and_out_norms():
    model = CrossFormer(TINY, out_indices=(1, 3), out_norm_cfg=dict(type='LN'))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    assert not hasattr(CrossFormer(TINY), 'norm3')


def test_frozen_stages_stay_frozen_in_train_mode():
    model = CrossFormer(TINY, frozen_stages=2)
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())
    stem_only = CrossFormer(TINY, frozen_stages=0).train()
    assert not any(p.requires_grad for p in stem_only.stages[0].cel.parameters())
    assert all(p.requires_grad for p in stem_only.stages[0].blocks.parameters())


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = CrossFormer(TINY_PP, drop_path_rate=0.0)
    ckpt = CrossFormer(TINY_PP, drop_path_rate=0.0, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 80)
    calls = []
    original = cf_module.checkpoint
    cf_module.checkpoint = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        for model in (plain, ckpt):
            sum(o.square().mean() for o in model(x)).backward()
    finally:
        cf_module.checkpoint = original
    assert len(calls) == sum(TINY_PP['depths'])
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_drop_path_rate_rises_linearly():
    """Block k of the 5 gets 0.3 * k / 4, across the stages."""
    model = CrossFormer(TINY, drop_path_rate=0.3)
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    assert rates == pytest.approx([0.3 * k / 4 for k in range(5)], abs=1e-7)


def test_forward_does_not_change_the_module():
    model = CrossFormer(TINY).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = [(s.group_size, s.interval) for s in model.stages]
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        ref = model(x)
        model(torch.randn(1, 3, 33, 40))
        again = model(x)
    assert attrs == [(s.group_size, s.interval) for s in model.stages]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for a, b in zip(ref, again):
        assert torch.equal(a, b)


def test_train_mode():
    torch.manual_seed(0)
    model = CrossFormer(TINY_PP, drop_path_rate=0.2).train()
    outs = model(torch.randn(2, 3, 70, 90))
    sum(o.mean() for o in outs).backward()
    # Every parameter gets a finite gradient; every linear layer a non-zero one (a DPB of this
    # width normalizes 2 features, whose LayerNorm output, +-1, has no gradient).
    for name, param in model.named_parameters():
        assert torch.isfinite(param.grad).all(), name
        if name.endswith(('qkv.weight', 'proj.weight', 'layers.0.0.weight', 'layers.1.weight')) \
                and '.dpb.' not in name:
            assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('dtype, tolerance', [(torch.bfloat16, 0.05), (torch.float16, 0.01)])
def test_autocast(dtype, tolerance):
    """Close to float32 as the converted models of test_precision.py are, relative to the
    output's largest value."""
    model = CrossFormer(TINY_PP).eval()
    x = torch.randn(1, 3, 70, 90)  # groups of several shapes in a stage
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=dtype):
            low = model(x)
    for a, b in zip(ref, low):
        assert b.dtype == dtype and torch.isfinite(b).all()
        assert (a - b.float()).abs().max() < tolerance * a.abs().max()


def test_groupings_built_once_per_geometry(monkeypatch):
    built = []
    original = Grouping.build
    monkeypatch.setattr(Grouping, 'build',
                        staticmethod(lambda *a, **k: built.append(a[0]) or original(*a, **k)))
    model = CrossFormer(TINY_PP).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 96))
    # One SDA and (for stages with more than one block) one LDA grouping per stage.
    assert built == ['sda', 'sda', 'sda', 'lda', 'sda']


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='xl'), "Unknown CrossFormer arch 'xl'"),
    (dict(arch='s', group_size=[7, 7, 7]), 'group_size needs one value per stage (4), got 3'),
    (dict(arch='s', interval=[8, 0, 2, 1]), 'interval values must be integers >= 1'),
    (dict(arch='s', group_size=-1), 'group_size values must be integers >= 1'),
    (dict(arch=dict(TINY, num_heads=[3, 1, 1, 1])), 'dim 16 is not divisible by num_heads 3'),
    (dict(arch=dict(TINY, mlp=4)), "unknown ['mlp']"),
    (dict(arch='t', out_indices=(4, )), 'out_indices must be stage indices'),
    (dict(arch='t', frozen_stages=5), 'frozen_stages must be in [-1, 4]'),
])
def test_bad_config_is_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        CrossFormer(**kwargs)
    assert message in str(err.value)


PER_STAGE = 'must be an integer or a list of 4 integers, got'


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(group_size=7.0), TypeError, f'group_size {PER_STAGE} float 7.0'),
    (dict(group_size=[7, 7, 7.0, 7]), TypeError, f'group_size {PER_STAGE} list [7, 7, 7.0, 7]'),
    (dict(interval='8421'), TypeError, f"interval {PER_STAGE} str '8421'"),
    (dict(group_size=True), TypeError, f'group_size {PER_STAGE} bool True'),
    (dict(arch=dict(TINY, depths='1211')), TypeError, f"depths {PER_STAGE} str '1211'"),
    (dict(arch=dict(TINY, num_heads=None)), TypeError, f'num_heads {PER_STAGE} NoneType None'),
    (dict(arch=dict(TINY, embed_dims=16.0)), TypeError,
     'embed_dims must be an integer, got float 16.0'),
    (dict(drop_path_rate='0.1'), TypeError,
     "drop_path_rate must be a number in [0, 1), got str '0.1'"),
    (dict(drop_path_rate=float('nan')), ValueError, 'drop_path_rate must be in [0, 1), got nan'),
    (dict(drop_path_rate=float('inf')), ValueError, 'drop_path_rate must be in [0, 1), got inf'),
    (dict(out_indices='23'), TypeError,
     "out_indices must be a stage index or a sequence of them, got str '23'"),
    (dict(frozen_stages=1.0), TypeError, 'frozen_stages must be an integer, got float 1.0'),
])
def test_argument_of_the_wrong_type_is_named(kwargs, error, message):
    with pytest.raises(error) as err:
        CrossFormer(**dict(dict(arch=TINY), **kwargs))
    assert str(err.value) == message


def test_numpy_integers_are_integers():
    import numpy as np
    model = CrossFormer(dict(TINY, embed_dims=np.int64(16)), group_size=np.int64(4),
                        interval=(np.int32(4), 2, 1, 1), out_indices=np.int64(3))
    assert model.group_size == [4, 4, 4, 4] and model.interval == [4, 2, 1, 1]
    assert type(model.embed_dims) is int and type(model.group_size[0]) is int
    assert model.out_indices == (3, )


@pytest.mark.parametrize('shape, message', [
    ((3, 64, 64), 'expects (B, 3, H, W) images, got shape (3, 64, 64)'),
    ((1, 1, 64, 64), 'expects (B, 3, H, W) images, got shape (1, 1, 64, 64)'),
    ((1, 3, 16, 64), 'at least 32 x 32'),
])
def test_bad_input_is_named(shape, message):
    with pytest.raises(ValueError) as err:
        CrossFormer(TINY)(torch.randn(*shape))
    assert message in str(err.value)


def _official_state(model: CrossFormer) -> dict:
    return {ours_to_official(k): v for k, v in model.state_dict().items()}


@pytest.mark.parametrize('wrap', ['imagenet', 'mmdet2', 'module'])
def test_pretrained_init_takes_official_checkpoints(tmp_path, wrap):
    source = CrossFormer(TINY_PP)
    state = _official_state(source)
    if wrap == 'imagenet':
        state['head.weight'], state['head.bias'] = torch.zeros(10, 128), torch.zeros(10)
        ckpt = dict(model=state)
    elif wrap == 'mmdet2':
        ckpt = dict(state_dict={f'backbone.{k}': v for k, v in state.items()},
                    meta=dict(mmdet_version='2.26.0'))
        ckpt['state_dict']['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    else:
        ckpt = dict(state_dict={f'module.backbone.{k}': v for k, v in state.items()})
    path = tmp_path / 'official.pth'
    torch.save(ckpt, path)
    model = CrossFormer(TINY_PP, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_pretrained_init_reports_missing_and_unexpected_keys(tmp_path, monkeypatch):
    state = _official_state(CrossFormer(TINY))
    state.pop('layers.3.blocks.0.mlp.fc2.bias')
    state['head.weight'] = torch.zeros(10, 128)
    torch.save(dict(model=state), tmp_path / 'c.pth')
    model = CrossFormer(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'c.pth')))
    logged = []
    monkeypatch.setattr(ckpt_module, 'print_log', lambda msg, **kw: logged.append((msg, kw)))
    model.init_weights()
    (text, kwargs), = logged
    assert kwargs['level'] == logging.WARNING
    assert "missing keys: ['stages.3.blocks.0.ffn.layers.1.bias']" in text
    assert "unexpected keys: ['head.weight']" in text


def test_pretrained_init_refuses_a_checkpoint_of_another_arch(tmp_path):
    torch.save(dict(model=_official_state(CrossFormer(TINY))), tmp_path / 'tiny.pth')
    model = CrossFormer(dict(TINY, embed_dims=32),
                        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'tiny.pth')))
    with pytest.raises(ValueError, match=r'does not fit this CrossFormer .*stages\.0\.cel'
                       r'\.projs\.0\.weight: checkpoint \(8, 3, 4, 4\) vs model \(16, 3, 4, 4\)'):
        model.init_weights()


def test_pretrained_init_refuses_a_foreign_checkpoint(tmp_path):
    torch.save(dict(state_dict={'conv1.weight': torch.zeros(3)}), tmp_path / 'resnet.pth')
    model = CrossFormer(TINY, init_cfg=dict(type='Pretrained',
                                            checkpoint=str(tmp_path / 'resnet.pth')))
    with pytest.raises(ValueError, match='holds no CrossFormer backbone weights'):
        model.init_weights()


def test_official_names_load_through_load_state_dict():
    source = CrossFormer(TINY_PP)
    wrapper = torch.nn.Module()
    wrapper.backbone = CrossFormer(TINY_PP)
    state = {f'backbone.{k}': v for k, v in _official_state(source).items()}
    result = wrapper.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(wrapper.backbone.stages[2].blocks[2].acl.conv.weight,
                       source.stages[2].blocks[2].acl.conv.weight)
