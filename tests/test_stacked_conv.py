"""Convolutions as matrix products (``stacked_conv``) compute what ``nn.Conv2d`` computes.

The two differ only in the order of floating-point sums, so they are compared in float64 (``float64``
fixture). There a sum of n terms, reordered, differs by at most about n * 1.1e-16 of the sum of the
terms' magnitudes. The longest sums here are All-CNN-C's 192 * 9 = 1,728-term 3x3 convolutions and
the weight gradients' sums over batch x positions (4 * 16 * 16 = 1,024 terms), so about 2e-13 of
magnitudes of order 1 (inputs and He/xavier-initialised activations are O(1); the weights' gradients
are sums of O(1) products); a dozen layers carry that forward and back without amplifying it by more
than a few times. ``TOLERANCE`` = 1e-10 (relative, and absolute for entries near zero by cancellation)
leaves a margin of over 100 above that, while a wrong padding, stride, patch order or bias moves
outputs and gradients by 1e-2 or more: ``test_a_wrong_padding_fails_the_comparison`` shows that the
comparison does fail then.
"""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from imbalance_study import models
from imbalance_study.stacked_conv import IM2COL, GemmConv2d, gemm_conv2d, with_gemm_convolutions

TOLERANCE = dict(rtol=1e-10, atol=1e-10)
K = 3  # networks stacked
BATCH = 4
# Small images each network accepts: LeNet-5 20x20 (-> 8x8 -> 2x2 after its two valid convolutions
# and pools), digits 8x8, All-CNN-C 16x16 (-> 8 -> 4 -> 2 through its strided and valid convolutions).
MODELS = {"lenet5": (20, 20, 1), "digits_cnn": (8, 8, 1), "allcnn_c": (16, 16, 3)}


pytestmark = pytest.mark.usefixtures("float64")  # every test here compares in float64 (tests/conftest.py)


_GROUPED = {}


def grouped(name):
    """The K stacked networks of ``name`` and their grouped-convolution results, computed once per session."""
    if name not in _GROUPED:
        template, parameters, buffers, inputs = stack(name, MODELS[name])
        base = copy.deepcopy(template).to("meta")  # as stacked.py builds it
        _GROUPED[name] = base, parameters, buffers, inputs, stacked_outputs(base, parameters, buffers, inputs)
    return _GROUPED[name]


def stacked_outputs(base, parameters, buffers, inputs, seed=123):
    """Outputs of the K stacked networks and the gradients of sum(outputs * weights) w.r.t. every stacked parameter.

    Dropout (All-CNN-C) draws masks under vmap: the same seed before both engines gives both the same masks.
    """
    torch.manual_seed(seed)
    outputs = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="different")(
        parameters, buffers, inputs)
    weights = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(7))
    gradients = torch.autograd.grad((outputs * weights).sum(), list(parameters.values()))
    return outputs.detach(), dict(zip(parameters, gradients))


def stack(name, shape):
    networks = []
    for seed in range(K):  # differently seeded networks
        torch.manual_seed(seed)
        networks.append(models.build(name, 10, shape))
    parameters, buffers = stack_module_state(networks)
    inputs = torch.randn(K, BATCH, shape[2], shape[0], shape[1], generator=torch.Generator().manual_seed(3))
    return networks[0], parameters, buffers, inputs


def assert_same(expected, actual):
    outputs, gradients = expected
    torch.testing.assert_close(actual[0], outputs, **TOLERANCE)
    assert list(actual[1]) == list(gradients)
    for name in gradients:
        torch.testing.assert_close(actual[1][name], gradients[name], **TOLERANCE, msg=lambda text: f"{name}: {text}")


@pytest.mark.parametrize("im2col", IM2COL)
@pytest.mark.parametrize("name", MODELS)
def test_stacked_gemm_matches_grouped_convolution(name, im2col):
    base, parameters, buffers, inputs, expected = grouped(name)
    gemm = with_gemm_convolutions(base, im2col)
    convolutions = [module for module in base.modules() if isinstance(module, nn.Conv2d)]
    assert convolutions and not any(isinstance(module, GemmConv2d) for module in base.modules())  # base untouched
    assert sum(isinstance(module, GemmConv2d) for module in gemm.modules()) == len(convolutions)
    assert [name for name, _ in gemm.named_parameters()] == list(parameters)
    assert expected[0].abs().max() > 1e-3 and all(g.abs().max() > 0 for g in expected[1].values())
    assert_same(expected, stacked_outputs(gemm, parameters, buffers, inputs))


@pytest.mark.parametrize("im2col", IM2COL)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", MODELS)
def test_single_network_gemm_matches_convolution(name, channels_last, im2col):
    """One network, no vmap: the one-at-a-time engine's case, with its channels-last inputs and weights."""
    torch.manual_seed(0)
    model = models.build(name, 10, MODELS[name]).eval()
    gemm = with_gemm_convolutions(model, im2col)
    assert gemm.state_dict().keys() == model.state_dict().keys()
    gemm.load_state_dict(model.state_dict())  # a checkpoint of one loads into the other
    height, width, channels = MODELS[name]
    x = torch.randn(BATCH, channels, height, width)
    if channels_last:
        model, gemm = (net.to(memory_format=torch.channels_last) for net in (model, gemm))
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for net in (model, gemm):
        outputs = net(x)
        weights = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(7))
        gradients = torch.autograd.grad((outputs * weights).sum(), list(net.parameters()))
        results.append((outputs.detach(), dict(zip([name for name, _ in net.named_parameters()], gradients))))
    assert_same(*results)


# (in, out, kernel, stride, padding, bias, (H, W)): the study's convolutions (LeNet-5's 5x5 valid,
# digits' and All-CNN-C's 3x3 same, All-CNN-C's stride-2 padded 3x3 (conv3, conv6), its valid 3x3
# (conv7) and 1x1 (conv8, conv9)), ResNet's 7x7 stride 2 without bias, and a few edge cases
# (odd and non-square sizes, 1x1 with stride, padding 'same' with even kernel sides (asymmetric, (0, 1) rows and
# (1, 2) columns), a non-square kernel
# with different strides and paddings along H and W, which catches H and W swapped).
LAYERS = {
    "lenet_5x5": (1, 20, 5, 1, 0, True, (12, 12)),
    "same_3x3": (4, 6, 3, 1, 1, True, (8, 8)),
    "stride2_pad1_3x3": (5, 7, 3, 2, 1, True, (9, 7)),
    "valid_3x3": (5, 7, 3, 1, 0, True, (6, 6)),
    "1x1": (6, 4, 1, 1, 0, True, (5, 6)),
    "1x1_stride2x1": (6, 4, 1, (2, 1), 0, True, (5, 6)),
    "7x7_stride2_pad3_nobias": (3, 4, 7, 2, 3, False, (13, 11)),
    "same_even_2x4": (2, 3, (2, 4), 1, "same", True, (7, 6)),
    "3x5_stride1x2_pad1x2": (2, 3, (3, 5), (1, 2), (1, 2), True, (6, 9)),
}


def layer_results(function, x, weight, bias):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = None if bias is None else bias.clone().requires_grad_()
    outputs = function(x, weight, bias)
    weights = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(7))
    leaves = [tensor for tensor in (x, weight, bias) if tensor is not None]
    return outputs.detach(), dict(zip(["input", "weight", "bias"], torch.autograd.grad((outputs * weights).sum(), leaves)))


@pytest.mark.parametrize("im2col", IM2COL)
@pytest.mark.parametrize("layer", LAYERS)
def test_layer_matches_conv2d_alone_and_stacked(layer, im2col):
    in_channels, out_channels, kernel, stride, padding, bias, (height, width) = LAYERS[layer]
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=bias)
    gemm = GemmConv2d.from_conv(conv, im2col)
    assert gemm.weight is conv.weight and gemm.bias is conv.bias
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(K, BATCH, in_channels, height, width, generator=generator)
    weight = torch.randn(K, *conv.weight.shape, generator=generator)
    biases = torch.randn(K, out_channels, generator=generator) if bias else None

    def run(module):
        def one(x, weight, bias):
            return functional_call(module, {"weight": weight, **({"bias": bias} if bias is not None else {})}, (x,))
        return one

    # one network, in both memory formats
    for memory_format in (torch.contiguous_format, torch.channels_last):
        single = x[0].contiguous(memory_format=memory_format)
        single_bias = None if biases is None else biases[0]
        expected = layer_results(run(conv), single, weight[0], single_bias)
        assert_same(expected, layer_results(run(gemm), single, weight[0], single_bias))
    # K networks under vmap (a grouped convolution against a batched matrix product)
    in_dims = (0, 0, 0 if bias else None)
    expected = layer_results(lambda *a: vmap(run(conv), in_dims=in_dims)(*a), x, weight, biases)
    assert_same(expected, layer_results(lambda *a: vmap(run(gemm), in_dims=in_dims)(*a), x, weight, biases))


def test_the_study_models_strided_and_1x1_convolutions_are_covered():
    """All-CNN-C's stride-2 padded 3x3 (conv3, conv6) and its 1x1 convolutions (conv8, conv9) are GemmConv2d."""
    gemm = with_gemm_convolutions(models.build("allcnn_c", 10, (16, 16, 3)).to("meta"))
    assert all(isinstance(getattr(gemm, f"conv{n}"), GemmConv2d) for n in range(1, 10))
    assert (gemm.conv3.kernel_size, gemm.conv3.stride, gemm.conv3._paddings) == ((3, 3), (2, 2), ((1, 1), (1, 1)))
    assert (gemm.conv6.kernel_size, gemm.conv6.stride, gemm.conv6._paddings) == ((3, 3), (2, 2), ((1, 1), (1, 1)))
    assert gemm.conv8.kernel_size == gemm.conv9.kernel_size == (1, 1)
    assert gemm.conv7._paddings == ((0, 0), (0, 0))


@pytest.mark.parametrize("im2col", IM2COL)
def test_a_wrong_padding_fails_the_comparison(im2col, monkeypatch):
    """The comparison can fail: All-CNN-C's stride-2 conv3 padded (2, 0) instead of (1, 1) (same output
    shape, shifted windows) is caught, on the outputs and on the gradients."""
    base, parameters, buffers, inputs, expected = grouped("allcnn_c")
    wrong = with_gemm_convolutions(base, im2col)
    wrong.conv3._paddings = ((2, 0), (2, 0))
    outputs, gradients = stacked_outputs(wrong, parameters, buffers, inputs)
    assert outputs.shape == expected[0].shape
    assert (outputs - expected[0]).abs().max() > 1e-3
    assert (gradients["conv1.weight"] - expected[1]["conv1.weight"]).abs().max() > 1e-3
    with pytest.raises(AssertionError):
        assert_same(expected, (outputs, gradients))


def test_a_transposed_kernel_or_missing_bias_fails_the_comparison():
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(shape, generator=generator) for shape in [(2, 3, 6, 6), (4, 3, 3, 3), (4,)])
    expected = nn.functional.conv2d(x, weight, bias, padding=1)
    torch.testing.assert_close(gemm_conv2d(x, weight, bias, padding=1), expected, **TOLERANCE)
    assert (gemm_conv2d(x, weight.transpose(-1, -2), bias, padding=1) - expected).abs().max() > 1e-2
    assert (gemm_conv2d(x, weight, None, padding=1) - expected).abs().max() > 1e-2


def test_with_gemm_convolutions_refuses_what_it_cannot_compute():
    model = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)))
    with pytest.raises(ValueError, match=r"1\.0: .*groups=2"):
        with_gemm_convolutions(model)
    with pytest.raises(ValueError, match="dilation"):
        with_gemm_convolutions(nn.Conv2d(2, 2, 3, dilation=2))
    with pytest.raises(ValueError, match="padding_mode"):
        GemmConv2d(2, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="im2col"):
        with_gemm_convolutions(nn.Conv2d(2, 2, 3), im2col="winograd")


@pytest.mark.parametrize("im2col", IM2COL)
def test_under_bf16_autocast(im2col):
    """Under autocast (protocol precision bf16) the product runs in bf16 as the convolution does; both
    round their operands to bf16 (8-bit mantissa, relative 2**-9 = 0.002), so they agree to about that."""
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, dtype=torch.float32)
    gemm = GemmConv2d.from_conv(conv, im2col)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, actual = conv(x), gemm(x)
    assert actual.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected.float(), rtol=2e-2, atol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # float64 is not autocast: it stays float64
        assert GemmConv2d.from_conv(nn.Conv2d(3, 8, 3))(x.double()).dtype == torch.float64
