"""tools/deploy.py: ONNX export of classifiers, detectors and segmentors, checked in ONNX Runtime
against PyTorch; mmdeploy's export of whole detectors and segmentors; one-line errors."""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

import cli
from _capture import ARCH, CAPTURE, SIZES, onnx_runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')
MASK_RCNN = osp.join(DEMO, 'mask-rcnn_crossformer-demo_shapes.py')
FPN = osp.join(DEMO, 'fpn_crossformer-demo_shapes.py')
DEPLOY = osp.join(ROOT, 'configs', 'deploy')
TINY_ARCH = ('dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], '
             'group_size=[4, 4, 4, 2], interval=[2, 2, 1, 1], with_acl=False)')


def tool():
    spec = importlib.util.spec_from_file_location('deploy', osp.join(ROOT, 'tools', 'deploy.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(tmp_path, base: str, body: str) -> str:
    """A config file inheriting ``configs/<base>`` with ``body`` on top: a tiny variant."""
    path = tmp_path / f'tiny_{osp.basename(base)}'
    path.write_text(f'_base_ = {osp.join(ROOT, "configs", base)!r}\n{body}\n')
    return str(path)


@pytest.fixture
def retinanet(tmp_path) -> str:
    """RetinaNet with a 16-channel CrossFormer, a 32-channel FPN and a one-conv head of 4
    classes (mmdeploy's NMS runs class by class in PyTorch)."""
    return config(tmp_path, 'retinanet_crossformer_s_1x.py', f"""model = dict(
    backbone=dict(arch={TINY_ARCH}),
    neck=dict(in_channels=[32, 64, 128], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32, stacked_convs=1, num_classes=4))""")


@pytest.fixture
def mask_rcnn(tmp_path) -> str:
    """The demo Mask R-CNN with the 16-channel CrossFormer."""
    return config(tmp_path, 'demo/mask-rcnn_crossformer-demo_shapes.py',
                  f'model = dict(backbone=dict(arch={TINY_ARCH}), '
                  'neck=dict(in_channels=[16, 32, 64, 128]))')


def run(*argv: str) -> list:
    return tool().main([*argv, '--runs', '1'])


def assert_equal_in_ort(results, shapes, atol=1e-4):
    """The comparisons at ``shapes``: outputs equal to ``atol``; latencies measured (their
    median: test_latency_is_the_median_of_the_timed_runs_after_a_warm_up)."""
    assert [r.shape for r in results] == shapes
    for r in results:
        assert r.max_abs_diff < atol, str(r)
        assert r.torch_ms > 0 and r.ort_ms > 0


def test_segmentor_static(tmp_path, capsys):
    out = tmp_path / 'fpn.onnx'
    results = run(FPN, '--out', str(out), '--shape', '64', '96')
    assert_equal_in_ort(results, [(1, 3, 64, 96)])
    import onnxruntime
    session = onnxruntime.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ['input']
    assert [o.name for o in session.get_outputs()] == ['output0']
    logits, = session.run(None, {'input': torch.zeros(1, 3, 64, 96).numpy()})
    assert logits.shape == (1, 4, 16, 24)   # the 4 classes at 1/4 resolution
    printed = capsys.readouterr().out
    assert 'legacy exporter, static input 1x3x64x96' in printed
    assert 'input 1x3x64x96: max |ORT - PyTorch| = ' in printed


def test_two_stage_detector_features_and_rpn(tmp_path):
    """Mask R-CNN: the 5 FPN maps, then the RPN's class maps and box maps of each level."""
    import onnxruntime
    out = tmp_path / 'mask_rcnn.onnx'
    results = run(MASK_RCNN, '--out', str(out), '--shape', '64', '64')
    assert_equal_in_ort(results, [(1, 3, 64, 64)])
    outputs = onnxruntime.InferenceSession(str(out)).run(
        None, {'input': torch.zeros(1, 3, 64, 64).numpy()})
    sizes = [16, 8, 4, 2, 1]
    assert [list(o.shape) for o in outputs] == ([[1, 64, s, s] for s in sizes]
                                                + [[1, 3, s, s] for s in sizes]
                                                + [[1, 12, s, s] for s in sizes])


def test_folded_dpb(tmp_path, retinanet):
    """The folded graph holds the bias tables, no DPB weights, and equals the unfolded model."""
    out = tmp_path / 'retinanet.onnx'
    results = run(retinanet, '--out', str(out), '--shape', '64', '96', '--fold-dpb')
    assert_equal_in_ort(results, [(1, 3, 64, 96)])
    names = [i.name for i in onnx.load(str(out)).graph.initializer]
    assert any('dpb.table_padded_4x4' in n for n in names)
    assert not any('.dpb.proj' in n or '.dpb.layers' in n for n in names)


@pytest.mark.slow
def test_classifier_dynamo_dynamic(tmp_path):
    """The dynamo exporter (torch.export converted to ONNX) with dynamic axes: one graph for
    every size from 32 x 32, where the backbone's stages turn into and out of one whole-map
    group (the sizes of the backbone's capture tests), and for every batch."""
    out = tmp_path / 'cls.onnx'
    shapes = [str(s) for _, h, w in SIZES for s in ('--check-shape', h, w)]
    results = run(config(tmp_path, 'crossformer_t_in1k.py',
                         f'model = dict(backbone=dict(arch={dict(ARCH, _delete_=True)!r}), '
                         'head=dict(in_channels=256))'),
                  '--out', str(out), '--shape', str(CAPTURE[1]), str(CAPTURE[2]), '--batch',
                  str(CAPTURE[0]), '--exporter', 'dynamo', '--dynamic', *shapes)
    assert_equal_in_ort(results, [(CAPTURE[0], 3, h, w) for _, h, w in SIZES])
    # The batch is free too: three images at once score as each alone.
    ort = onnx_runner(out)
    images = torch.randn(3, 3, 72, 64)
    together, = ort(images)
    alone = torch.cat([ort(image[None])[0] for image in images])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_dynamic_detector(tmp_path, retinanet):
    """One graph for other sizes (a map G * I does not divide, one smaller than G) and batch."""
    results = run(retinanet, '--out', str(tmp_path / 'retinanet.onnx'), '--shape', '64', '96',
                  '--dynamic')
    assert_equal_in_ort(results, [(1, 3, 64, 96), (1, 3, 96, 192), (2, 3, 32, 96)])


def test_dynamic_segmentor(tmp_path):
    results = run(FPN, '--out', str(tmp_path / 'fpn.onnx'), '--shape', '64', '64', '--dynamic',
                  '--check-shape', '96', '160', '--check-shape', '128', '96')
    assert_equal_in_ort(results, [(1, 3, 96, 160), (1, 3, 128, 96)])


# ------------------------------------------------------------------------------- mmdeploy
needs_mmdeploy = pytest.mark.skipif(importlib.util.find_spec('mmdeploy') is None,
                                    reason='mmdeploy is not installed (deploy extra)')


# The tool checks an mmdeploy static model at the export size, a dynamic one also at a larger one.
MMDEPLOY_SHAPES = {'static': [(1, 3, 64, 96)], 'dynamic': [(1, 3, 64, 96), (1, 3, 96, 160)]}


def mmdeploy_run(config: str, tmp_path, deploy_config: str) -> list:
    return run(config, '--out', str(tmp_path / 'end2end.onnx'), '--shape', '64', '96',
               '--mmdeploy', osp.join(DEPLOY, deploy_config))


# Every model dynamic (checked at two sizes), the segmentor static too.
@needs_mmdeploy
def test_mmdeploy_retinanet(tmp_path, retinanet):
    """NMS and box decoding in the graph: the 100 detections of ONNX Runtime and PyTorch pair
    up (same label, boxes and scores within 0.01) and agree to 1e-3."""
    results = mmdeploy_run(retinanet, tmp_path,
                           'mmdet/detection/detection_onnxruntime_dynamic.py')
    assert [r.shape for r in results] == MMDEPLOY_SHAPES['dynamic']
    for r in results:
        assert r.matched == (100, 100) and r.diffs['dets'] < 1e-3, str(r)
    assert [o.name for o in onnx.load(str(tmp_path / 'end2end.onnx')).graph.output] == [
        'dets', 'labels']


@needs_mmdeploy
def test_mmdeploy_mask_rcnn(tmp_path, mask_rcnn):
    """RoIAlign runs as ONNX's RoiAlign in ONNX Runtime, not mmcv's: close, not equal, and
    random weights make near ties that NMS breaks either way. 40 of the 50 detections pair up
    (same label, boxes and scores within 0.01: 42 and 47 on x86-64), and their masks agree."""
    results = mmdeploy_run(mask_rcnn, tmp_path,
                           'mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py')
    assert [r.shape for r in results] == MMDEPLOY_SHAPES['dynamic']
    for r in results:
        assert r.matched[1] == 50 and r.matched[0] >= 40, str(r)
        assert r.diffs['masks'] < 0.01, str(r)


@needs_mmdeploy
@pytest.mark.parametrize('deploy_config, shape', [
    ('segmentation_onnxruntime_static-512x512.py', 'static'),
    ('segmentation_onnxruntime_dynamic.py', 'dynamic')])
def test_mmdeploy_segmentor(tmp_path, deploy_config, shape):
    results = mmdeploy_run(FPN, tmp_path, f'mmseg/{deploy_config}')
    assert [r.shape for r in results] == MMDEPLOY_SHAPES[shape]
    for r in results:
        assert r.diffs == {'output': 0.}, str(r)


@needs_mmdeploy
def test_mmdeploy_patches_are_undone():
    from mmdeploy.core import FUNCTION_REWRITER
    from torch.onnx import symbolic_opset9
    from torch.onnx._internal.torchscript_exporter.registration import registry

    from crossformer_mm.deploy.export import _frame_func, mmdeploy_patches
    records = FUNCTION_REWRITER._registry._rewrite_records[
        'torch.nn.functional.scaled_dot_product_attention']

    from mmdeploy.core.rewriters import function_rewriter, symbolic_rewriter

    def state():
        return (torch.onnx.export, [r['_object'] for r in records],
                function_rewriter.get_frame_func, symbolic_rewriter.get_frame_func,
                hasattr(symbolic_opset9, '_cast_Long'),
                registry.is_registered_op('aten::unflatten', 11))

    before = state()
    assert before[4:] == (False, False)
    with mmdeploy_patches():
        assert torch.onnx.export.keywords == {'dynamo': False}
        assert state()[4:] == (True, True)
        assert [r['_object'] for r in records] != before[1]
        assert state()[2] is state()[3] is _frame_func
    assert state() == before


def test_latency_is_the_median_of_the_timed_runs_after_a_warm_up(monkeypatch):
    from crossformer_mm.deploy import export
    clock, durations = [0.], iter([1., 2**-10, 3 * 2**-10, 2**-9])  # seconds; warm-up first
    monkeypatch.setattr(export, 'time', SimpleNamespace(perf_counter=lambda: clock[0]))

    def run():
        clock[0] += next(durations)

    assert export._median_ms(run, 3) == 2**-9 * 1e3
    assert next(durations, None) is None


def test_detections_pair_by_label_box_and_score():
    """Rows pair with the row of the same label whose box and score are within 0.01 and
    nearest, in any order; equal boxes pair by their scores."""
    from crossformer_mm.deploy.export import pair_detections

    def outputs(rows):   # (label, x1, score) -> dets (1, N, 5) and labels (1, N)
        dets = np.array([[[x, 0., x + 8, 8., score] for _, x, score in rows]], np.float32)
        return [dets.reshape(1, -1, 5), np.array([[label for label, _, _ in rows]])]

    got = outputs([(1, 10., .9), (2, 20., .8), (3, 30., .7), (1, 40., .6), (4, 50., .5)])
    ref = outputs([(4, 50., .7), (2, 20.005, .805), (1, 10., .9), (3, 31., .7), (2, 40., .6),
                   (4, 50., .5)])
    (dets, labels), (ref_dets, ref_labels), matched = pair_detections(got, ref)
    assert matched == (3, 5)  # 30 vs 31 is too far; 40 has another label
    assert labels.tolist() == ref_labels.tolist() == [[1, 2, 4]]
    np.testing.assert_array_equal(ref_dets[0, :, [0, 4]],
                                  np.float32([[10., 20.005, 50.], [.9, .805, .5]]))


def test_sdpa_rewrite_scales_like_pytorch():
    from crossformer_mm.deploy.export import _sdpa_decomposed
    q, k, v = torch.randn(3, 2, 2, 5, 8).unbind(0)
    bias = torch.randn(1, 2, 5, 5)
    for scale in (None, 0.1):
        torch.testing.assert_close(
            _sdpa_decomposed(q, k, v, attn_mask=bias, scale=scale),
            torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                             scale=scale))


def test_traced_upsampling_follows_the_input_size(tmp_path):
    """mmseg's Upsample (FPN head) in a dynamic legacy graph: its output size is computed in
    the graph, not frozen at the export size; the patch is undone on exit."""
    import onnxruntime
    from mmseg.models.utils import Upsample, wrappers

    from crossformer_mm.deploy.export import traced_upsampling
    forward = wrappers.Upsample.forward
    up = Upsample(scale_factor=2, mode='bilinear', align_corners=False)
    path = str(tmp_path / 'upsample.onnx')
    with traced_upsampling():
        assert wrappers.Upsample.forward is not forward
        torch.onnx.export(up, (torch.randn(1, 2, 4, 4), ), path, dynamo=False,
                          input_names=['x'], dynamic_axes={'x': {2: 'h', 3: 'w'}})
    assert wrappers.Upsample.forward is forward
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    for h, w in ((4, 4), (3, 5), (6, 2)):
        x = torch.randn(1, 2, h, w)
        got, = session.run(None, {'x': x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), up(x))


# ------------------------------------------------------------------------------- errors
def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.run_cli(tool().main, list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'Traceback' not in err[0]
    return err[0]


@pytest.mark.parametrize('argv, message', [
    (['configs/nope.py'], 'config file not found: configs/nope.py'),
    ([FPN, 'nope.pth'], 'checkpoint file not found: nope.pth'),
    ([FPN, '--shape', '16', '64'], '--shape takes one or two integers >= 32 (H W), got 16 64'),
    ([FPN, '--shape', '64', '64', '64'],
     '--shape takes one or two integers >= 32 (H W), got 64 64 64'),
    ([FPN, '--dynamic', '--fold-dpb'],
     '--fold-dpb makes a graph for --shape only; it cannot be --dynamic'),
    ([FPN, '--shape', '64', '--check-shape', '96', '96'],
     '--check-shape differs from the export shape 64 64; add --dynamic to export a graph for '
     'other sizes'),
    ([FPN, '--mmdeploy', 'nope.py'], 'deploy config not found: nope.py'),
    ([FPN, '--mmdeploy', osp.join(DEPLOY, 'mmseg', 'segmentation_onnxruntime_dynamic.py'),
      '--fold-dpb'],
     '--fold-dpb: not with --mmdeploy (the deploy config says static or dynamic; mmdeploy uses '
     'the legacy exporter)'),
])
def test_errors(capsys, tmp_path, argv, message):
    assert fails(capsys, *argv, '--out', str(tmp_path / 'x.onnx')) == f'error: {message}'
    assert not (tmp_path / 'x.onnx').exists()


def test_not_a_checkpoint(capsys, tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_text('not weights\n')
    err = fails(capsys, FPN, str(bad), '--out', str(tmp_path / 'x.onnx'))
    assert err.startswith(f'error: {bad} is not a PyTorch checkpoint: it is a text file')


def test_onnxruntime_missing(capsys, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'onnxruntime' else find_spec(name, *a))
    assert fails(capsys, FPN, '--out', str(tmp_path / 'x.onnx')) == (
        'error: onnxruntime is not installed (the check runs the graph in ONNX Runtime): '
        'pip install -e ".[deploy]"')
