"""Captured graphs of the backbone serve every input size: ONNX (legacy and dynamo exporters,
run in ONNX Runtime), torch.export and torch.compile(dynamic=True), equal to eager."""
import os
import warnings
from pathlib import Path

import pytest
import torch

from crossformer_mm import CrossFormer
from crossformer_mm.models.backbones import captured
from crossformer_mm.testing import OracleCrossFormer

# Stage 1 has SDA and LDA (G * I = 16 does not divide most sizes below); stages 3 and 4 are one
# whole-map group at some sizes and not at others (G = 3).
ARCH = dict(embed_dims=32, depths=[2, 1, 2, 1], num_heads=[1, 2, 4, 8], group_size=[4, 4, 3, 3],
            interval=[4, 2, 2, 1], with_acl=False)
CAPTURE = (2, 64, 96)                 # stage 4: 2 x 3, one whole-map group
SIZES = [(1, 100, 164),               # padded spans everywhere, stage 4 not whole (3 x 5)
         (1, 160, 96),                # stage 4: 5 x 3, whole (W <= G)
         (3, 72, 64),                 # batch 3, stages 3 and 4 whole
         (1, 224, 224),               # stage 4 7 x 7: G = 3 groups, padded
         (1, 32, 32),                 # the smallest input: stage 4 is 1 x 1
         (2, 32, 40)]                 # stage 4 1 x 1, stage 3 2 x 2 (whole)


def model(arch: dict = ARCH) -> CrossFormer:
    torch.manual_seed(0)
    m = CrossFormer(arch, drop_path_rate=0.).eval()
    for p in m.parameters():  # LayerNorms start at 1 / 0: perturb so they count
        p.data.add_(torch.randn_like(p) * 0.02)
    return m


def dims() -> tuple:
    """torch.export dims of batch, height and width: every input of at least 32 x 32."""
    dim = torch.export.Dim
    return ({0: dim('batch', min=1, max=64), 2: dim('height', min=32, max=4096),
             3: dim('width', min=32, max=4096)}, )


def assert_equal_to_eager(m, run, sizes=SIZES):
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            refs = m(x)
            outs = run(x)
        assert len(outs) == 4
        for out, ref in zip(outs, refs):
            assert tuple(out.shape) == tuple(ref.shape)
            torch.testing.assert_close(torch.as_tensor(out), ref, rtol=1e-4, atol=1e-4)


def onnx_runner(path):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]


@pytest.mark.parametrize('margin', [False, True], ids=['compile-legacy', 'export'])
@pytest.mark.parametrize('arch', [ARCH, dict(ARCH, depths=[2, 1, 4, 1], with_acl=True)],
                         ids=['sda-lda', 'acl'])
def test_padded_path_equals_eager_and_oracle(monkeypatch, arch, margin):
    """The captured formulation (padded groups; while exporting, maps with a margin), run
    eagerly, at sizes with and without whole-map groups; with an ACL (stage 3), whose
    convolution must read the margin as 0."""
    m = model(arch)
    for b, h, w in [(1, 32, 200)] + SIZES:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            eager, oracle = m(x), OracleCrossFormer(m)(x)
            monkeypatch.setattr(captured, 'capturing', lambda: True)
            monkeypatch.setattr(captured, 'exporting', lambda: margin)
            outs = m(x)
            monkeypatch.undo()
        for out, ref, ora in zip(outs, eager, oracle):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out, ora, rtol=1e-4, atol=1e-4)


def test_legacy_onnx_dynamic_axes(tmp_path):
    pytest.importorskip('onnx')
    m = model()
    path = tmp_path / 'backbone.onnx'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.onnx.export(m, (torch.randn(*CAPTURE[:1], 3, *CAPTURE[1:]), ), str(path),
                          dynamo=False, opset_version=17, input_names=['x'],
                          output_names=[f'out{i}' for i in range(4)],
                          dynamic_axes={'x': {0: 'batch', 2: 'height', 3: 'width'}})
    # No value of the trace is fixed by our code: no tracer warning from the package's files
    # (matched by directory: a clone's own folder may be called crossformer_mm too).
    package = str(Path(captured.__file__).parents[2]) + os.sep
    assert not [f'{w.filename}:{w.lineno}: {w.message}' for w in caught
                if str(Path(w.filename).resolve()).startswith(package)]
    assert_equal_to_eager(m, onnx_runner(path))


# The demo configs' backbone (configs/demo/_base_/crossformer_demo.py): at 64 x 64 its stages
# 2-4 are one whole-map group each (maps 8, 4, 2 = G) and stage 1 is not; at 96 x 160 and
# 128 x 96 no stage is; at 32 x 96 stages 1-4 all are (8 x 24, ..., G = 8, 8, 4, 2).
DEMO_ARCH = dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8],
                 group_size=[8, 8, 4, 2], interval=[2, 1, 1, 1], with_acl=False)


@pytest.mark.parametrize('capture, sizes', [
    ((1, 64, 64), [(1, 64, 64), (1, 96, 160), (1, 128, 96)]),   # whole-map -> grouped
    ((1, 128, 96), [(1, 64, 64), (1, 32, 96), (2, 96, 160)]),   # grouped -> whole-map
])
def test_legacy_onnx_demo_arch_whole_map_changes(tmp_path, capture, sizes):
    """One legacy graph for sizes where stages turn into or out of one whole-map group."""
    pytest.importorskip('onnx')
    m = model(DEMO_ARCH)
    path = tmp_path / 'backbone.onnx'
    torch.onnx.export(m, (torch.randn(capture[0], 3, *capture[1:]), ), str(path),
                      dynamo=False, input_names=['x'],
                      output_names=[f'out{i}' for i in range(4)],
                      dynamic_axes={'x': {0: 'batch', 2: 'height', 3: 'width'}})
    assert_equal_to_eager(m, onnx_runner(path), sizes)


@pytest.fixture(scope='module')
def exported():
    """The model and one torch.export of it with free batch, height and width, shared by the
    test of the program and the dynamo ONNX export (which converts the program)."""
    m = model()
    return m, torch.export.export(m, (torch.randn(CAPTURE[0], 3, *CAPTURE[1:]), ),
                                  dynamic_shapes=dims())


def test_torch_export_dynamic_batch_height_width(exported):
    m, program = exported
    assert_equal_to_eager(m, program.module())


def test_dynamo_onnx_dynamic_shapes(tmp_path, exported):
    pytest.importorskip('onnxscript')
    m, program = exported
    path = tmp_path / 'backbone.onnx'
    torch.onnx.export(program, (), str(path), dynamo=True, input_names=['x'])
    assert_equal_to_eager(m, onnx_runner(path))


def test_compile_dynamic_compiles_once():
    """One graph for new sizes; it recompiles only where a stage's maps become (or stop being)
    one whole-map group, which torch.compile guards on (its torch.cond support fails today)."""
    from torch._dynamo.utils import counters
    m = model()
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(m, dynamic=True)
    # Same batch (dynamo specialises a batch of 1) and the same stages with whole-map groups
    # (stage 4): the compiled model's guards on the whole-map rule hold at all three sizes.
    assert_equal_to_eager(m, compiled, [(2, 64, 96), (2, 100, 164), (2, 160, 96)])
    assert counters['stats']['unique_graphs'] == 1
