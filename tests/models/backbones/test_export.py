"""Captured graphs of the backbone serve every input size, equal to eager: the legacy ONNX
exporter (run in ONNX Runtime) and torch.compile. torch.export, with free batch, height and
width, is tested through the dynamo ONNX exporter that converts its program
(``tests/tools/test_deploy_tool.py::test_classifier_dynamo_dynamic``, at the sizes of
``tests/_capture.py``)."""
import os
import warnings
from pathlib import Path

import pytest
import torch

from _capture import ARCH, CAPTURE, SIZES, assert_equal_to_eager, model, onnx_runner

from crossformer_mm.models.backbones import captured
from crossformer_mm.testing import OracleCrossFormer


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


#: captured.active's answers (for each stage and MLP) while dynamo traces the model.
FORMULATIONS = []
ACTIVE = captured.active


def recording_active(x):
    """captured.active, recording its answer at trace time (comptime runs only then)."""
    from torch._dynamo.comptime import comptime
    result = ACTIVE(x)
    comptime(lambda ctx: FORMULATIONS.append(ctx.get_local('result').as_python_constant()))
    return result


def compiled(m, monkeypatch, **options):
    """``torch.compile(m, **options)``, from a reset dynamo, recording captured.active."""
    from torch._dynamo.utils import counters
    monkeypatch.setattr(captured, 'active', recording_active)
    torch._dynamo.reset()
    counters.clear()
    FORMULATIONS.clear()
    return torch.compile(m, **options)


def test_compile_captures_the_eager_formulation_at_a_concrete_size(monkeypatch):
    """torch.compile's default first graph (inductor) sees concrete sizes and captures the
    eager formulation, the faster, in every stage and MLP."""
    m = model()
    assert_equal_to_eager(m, compiled(m, monkeypatch), [(2, 64, 96)])
    assert FORMULATIONS and not any(FORMULATIONS)


RUNTIME_OPS = ('grouping_order', 'attend_groups')


def recording_aot_eager(graphs):
    """AOTAutograd with eager kernels (inductor's code generation costs minutes on 2 cores; the
    inductor figures: docs/deploy.md), keeping dynamo's graphs in ``graphs``."""
    from torch._dynamo.backends.debugging import aot_eager

    def backend(gm, inputs):
        graphs.append(gm)
        return aot_eager(gm, inputs)
    return backend


def op_calls(graphs, name):
    op = getattr(torch.ops.crossformer_mm, name)
    return sum(n.target in (op, op.default) for g in graphs for n in g.graph.nodes)


@pytest.mark.slow
def test_compile_then_one_graph_of_symbolic_sizes_for_new_sizes(monkeypatch):
    """A second size makes the sizes symbolic: that graph serves the sizes after it, grouping the
    tokens at run time with the eager Grouping inside ops (on CPU; exporters take the padded
    formulation); the first keeps its own. It recompiles only where a stage's maps become (or
    stop being) one whole-map group, a guard (torch.cond fails inside compile)."""
    from torch._dynamo.utils import counters
    m = model()
    graphs = []
    run = compiled(m, monkeypatch, backend=recording_aot_eager(graphs))
    assert_equal_to_eager(m, run, [(2, 64, 96)])
    first, FORMULATIONS[:] = FORMULATIONS[:], []
    assert first and not any(first)
    assert [op_calls(graphs, op) for op in RUNTIME_OPS] == [0, 0]
    graphs.clear()
    # Same batch (dynamo specialises a batch of 1) and the same stages with whole-map groups
    # (stage 4): the symbolic graph's guards on the whole-map rule hold at both new sizes.
    assert_equal_to_eager(m, run, [(2, 100, 164), (2, 160, 96), (2, 64, 96)])
    assert FORMULATIONS and all(FORMULATIONS)
    assert counters['stats']['unique_graphs'] == 2
    blocks = sum(len(stage.blocks) for stage in m.stages)
    kinds = sum(min(len(stage.blocks), 2) for stage in m.stages)
    assert [op_calls(graphs, op) for op in RUNTIME_OPS] == [kinds, blocks]


@pytest.mark.slow
def test_symbolic_graph_trains_as_eager():
    """The runtime grouping's ops under AOTAutograd at symbolic sizes (``dynamic=True``):
    gradients of every parameter equal eager's. At 64 x 96, stages 1 and 2 have groups of
    several shapes (regions), stage 3's LDA groups are smaller than G (its map is smaller than
    a span) and stage 4 is one whole-map group."""
    m = model().train()
    torch._dynamo.reset()
    graphs = []
    run = torch.compile(m, dynamic=True, backend=recording_aot_eager(graphs))
    x = torch.randn(2, 3, 64, 96)
    grads = [torch.autograd.grad(sum(out.square().mean() for out in forward(x)),
                                 list(m.parameters())) for forward in (m, run)]
    for eager_grad, compiled_grad in zip(*grads):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-6)
    assert op_calls(graphs, 'attend_groups') == sum(len(stage.blocks) for stage in m.stages)


def test_runtime_grouping_ops_are_eager_attention():
    """The ops of a graph of symbolic sizes: fake kernels and autograd checked by opcheck, and
    forward and gradients those of eager attention over the same Grouping, for groups smaller
    than the DPB's G x G table (LDA on a map smaller than a span) and of several regions."""
    from crossformer_mm.models.backbones import memory
    torch.manual_seed(0)
    heads, c, g, i = 2, 8, 3, 2
    for size in ([2, 4, 6], [1, 7, 11]):
        tokens = size[0] * size[1] * size[2]
        qkv = torch.randn(tokens, 3 * c, dtype=torch.double, requires_grad=True)
        table = torch.randn(heads, (2 * g - 1)**2, dtype=torch.double, requires_grad=True)
        args = ('lda', size, g, i)
        torch.library.opcheck(torch.ops.crossformer_mm.attend_groups, (qkv, table, *args))
        torch.library.opcheck(torch.ops.crossformer_mm.grouping_order, (qkv, *args))
        grouping = captured._grouping('lda', tuple(size), g, i, qkv.device)
        order, inverse = torch.ops.crossformer_mm.grouping_order(qkv, *args)
        assert torch.equal(order, grouping.order) and torch.equal(inverse, grouping.inverse)
        assert min(r.shape for r in grouping.regions) < (g, g)
        out = torch.ops.crossformer_mm.attend_groups(qkv, table, *args)
        ref = memory.attend_groups(qkv, table, grouping)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        grad = torch.randn_like(out)
        for a, b in zip(torch.autograd.grad(out, (qkv, table), grad),
                        torch.autograd.grad(ref, (qkv, table), grad)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize('input_grad,groups', [(False, 1), (True, 1), (True, 4)],
                         ids=['image', 'tokens', 'depth-wise'])
def test_opaque_conv2d_is_conv2d_to_the_last_digit(input_grad, groups):
    """The op that keeps the backbone's convolutions out of inductor's layout choice: its fake
    (meta) kernel, autograd registration and gradients are torch's own convolution's, for the
    CEL's (a 3-channel image or tokens) and the ACL's (depth-wise)."""
    channels = 3 if groups == 1 else groups
    conv = torch.nn.Conv2d(channels, 8, 8, 4, padding=2, groups=groups).double()
    x = torch.randn(2, channels, 20, 24, dtype=torch.double, requires_grad=input_grad)
    torch.library.opcheck(torch.ops.crossformer_mm.conv2d,
                          (x, conv.weight, conv.bias, 4, 2, groups))
    inputs = [conv.weight, conv.bias] + [x] * input_grad
    out, ref = captured.opaque_conv2d(conv, x), conv(x)
    grad = torch.randn_like(ref)
    assert torch.equal(out, ref)
    for a, b in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        assert torch.equal(a, b)
    with torch.autocast('cpu', dtype=torch.bfloat16):   # autocast's dtype, as conv2d's
        out, ref = captured.opaque_conv2d(conv.float(), x.float()), conv(x.float())
    assert out.dtype == ref.dtype == torch.bfloat16 and torch.equal(out, ref)


def test_compiled_graphs_call_the_convolutions_and_token_permutations_as_ops():
    """Under torch.compile on CPU, training and inference take every convolution (CEL, ACL)
    through the opaque op (inductor would make the (B, H, W, C) maps upstream of a convolution
    channels-last as if they were (B, C, H, W)) and get eager's gradients. Every attention's
    two token permutations stay an op in both (inductor would fuse the gathers into the
    LayerNorms beside them). Dynamo's graphs only: AOTAutograd's handling of the ops is
    opcheck's (here and in test_memory.py)."""
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm

    def ops():
        targets = [n.target for g in graphs for n in g.graph.nodes]
        return (sum(t in (torch.ops.crossformer_mm.conv2d, torch.ops.crossformer_mm.conv2d.default)
                    for t in targets),
                sum(t in (torch.conv2d, torch.nn.functional.conv2d) for t in targets),
                sum(t in (torch.ops.crossformer_mm.permute_tokens,
                          torch.ops.crossformer_mm.permute_tokens.default) for t in targets))

    # one block a stage (a shorter trace), and an ACL after stage 1's third block
    m = model(dict(ARCH, depths=[4, 1, 1, 1], with_acl=True)).train()
    x = torch.randn(2, 3, 64, 96)
    torch._dynamo.reset()
    run = torch.compile(m, backend=backend)
    grads = []
    for forward in (m, run):
        m.zero_grad()
        sum(out.square().mean() for out in forward(x)).backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for compiled_grad, eager_grad in zip(*grads[::-1]):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)
    convolutions = sum(len(stage.cel.projs) for stage in m.stages) + 1   # and one ACL
    permutations = 2 * sum(len(stage.blocks) for stage in m.stages)
    assert ops() == (convolutions, 0, permutations)
    graphs.clear()
    with torch.no_grad():
        run(x)
    assert ops() == (convolutions, 0, permutations)
