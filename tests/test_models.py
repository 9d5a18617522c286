import numpy as np
import pytest
import torch
from torch import nn

from imbalance_study import models

# All-CNN-C's weights and biases, layer by layer: 3->96, 96->96 (x2), 96->192, 192->192 (x3, 3x3),
# 192->192 (1x1), 192->10 (1x1).
ALLCNN_C_PARAMETERS = (3 * 96 * 9 + 96) + 2 * (96 * 96 * 9 + 96) + (96 * 192 * 9 + 192) \
    + 3 * (192 * 192 * 9 + 192) + (192 * 192 + 192) + (192 * 10 + 10)
# ResNet-10 without its fc: conv1 + bn1, then one BasicBlock per stage (two 3x3 convs with batch
# norm, and a 1x1 downsampling conv with batch norm from the second stage on).
RESNET10_BACKBONE = (3 * 64 * 49 + 128) + (2 * 64 * 64 * 9 + 256) \
    + (64 * 128 * 9 + 128 * 128 * 9 + 512 + 64 * 128 + 256) \
    + (128 * 256 * 9 + 256 * 256 * 9 + 1024 + 128 * 256 + 512) \
    + (256 * 512 * 9 + 512 * 512 * 9 + 2048 + 256 * 512 + 1024)

# ResNet-32 (He et al.'s CIFAR network): conv1 + bn1, then three stages of five basic blocks (two
# 3x3 convs without bias, each with batch norm: 2 parameters per channel); option-A shortcuts add none.
RESNET32_BACKBONE = (3 * 16 * 9 + 2 * 16) + 5 * (2 * 16 * 16 * 9 + 4 * 16) \
    + (16 * 32 * 9 + 32 * 32 * 9 + 4 * 32) + 4 * (2 * 32 * 32 * 9 + 4 * 32) \
    + (32 * 64 * 9 + 64 * 64 * 9 + 4 * 64) + 4 * (2 * 64 * 64 * 9 + 4 * 64)
IMAGE_SHAPES = {"lenet5": (28, 28), "digits_cnn": (8, 8), "allcnn_c": (32, 32, 3), "resnet10": (64, 64, 3),
                "resnet32": (32, 32, 3), "mlp": (30,)}


def n_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_allcnn_c_follows_springenberg_table():
    model = models.build("allcnn_c", 10, (32, 32, 3)).eval()
    assert n_parameters(model) == ALLCNN_C_PARAMETERS == 1_369_738
    x = torch.randn(4, 3, 32, 32)
    assert model.score_maps(x).shape == (4, 10, 6, 6)  # 32 -> 16 -> 8 -> 6 (valid 3x3)
    assert model(x).shape == (4, 10)
    assert model.features(x).shape == (4, 192)
    # the class scores are the spatial mean of the rectified 1x1 classifier ("1x1 conv. 10 ReLU")
    expected = torch.relu(model.conv9(model._last_hidden_maps(x))).mean(dim=(2, 3))
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    assert (model(x) >= 0).all()
    strides = [model.conv3.stride, model.conv6.stride]
    assert strides == [(2, 2), (2, 2)] and model.conv7.padding == (0, 0)
    assert [model.conv8.kernel_size, model.conv9.kernel_size] == [(1, 1), (1, 1)]


def test_allcnn_c_dropout_only_in_training():
    model = models.build("allcnn_c", 10, (32, 32, 3))
    dropouts = [module.p for module in model.modules() if isinstance(module, nn.Dropout)]
    assert dropouts == [0.2, 0.5, 0.5]
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_allcnn_c_init_is_he_normal_with_zero_biases():
    model = models.build("allcnn_c", 10, (32, 32, 3))
    weight = model.conv5.weight
    assert model.conv5.bias.abs().max() == 0
    assert weight.std().item() == pytest.approx(np.sqrt(2.0 / (192 * 9)), rel=0.02)
    xavier = models.build("allcnn_c", 10, (32, 32, 3), {"init": "caffe_xavier"})
    assert xavier.conv5.weight.abs().max().item() <= np.sqrt(3.0 / (192 * 9)) + 1e-7
    with pytest.raises(ValueError, match="allcnn_c.*init"):
        models.build("allcnn_c", 10, (32, 32, 3), {"init": "orthogonal"})


def test_resnet10_counts_and_shapes():
    model = models.build("resnet10", 15, (64, 64, 3)).eval()
    assert n_parameters(model) == RESNET10_BACKBONE + 512 * 15 + 15 == 4_913_487
    assert n_parameters(models.build("resnet10", 1000, (224, 224, 3))) == RESNET10_BACKBONE + 513_000 == 5_418_792
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 15)
    assert model.features(x).shape == (2, 512)
    torch.testing.assert_close(model(x), model.fc(model.features(x)))
    assert [len(getattr(model, f"layer{n}")) for n in range(1, 5)] == [1, 1, 1, 1]


def test_resnet10_keeps_torchvision_kaiming_init():
    model = models.build("resnet10", 10, (64, 64, 3))
    conv = model.layer3[0].conv2  # 256 -> 256, 3x3: fan_out 256 * 9
    assert conv.weight.std().item() == pytest.approx(np.sqrt(2.0 / (256 * 9)), rel=0.02)
    assert torch.all(model.layer3[0].bn2.weight == 1) and torch.all(model.layer3[0].bn2.bias == 0)


def test_mlp_for_tabular_features():
    model = models.build("mlp", 2, (30,))
    assert [layer.out_features for layer in model.hidden] == [64, 32]
    x = torch.randn(5, 30)
    assert model(x).shape == (5, 2) and model.features(x).shape == (5, 32)
    assert all(layer.bias.abs().max() == 0 for layer in model.modules() if isinstance(layer, nn.Linear))
    bound = np.sqrt(6.0 / (30 + 64))  # Glorot uniform
    assert model.hidden[0].weight.abs().max().item() <= bound
    assert model.hidden[0].weight.abs().max().item() > 0.9 * bound
    wide = models.build("mlp", 3, (30,), {"hidden": [16, 8, 4], "dropout": 0.5})
    assert [layer.out_features for layer in wide.hidden] == [16, 8, 4] and wide(x).shape == (5, 3)
    assert any(isinstance(module, nn.Dropout) and module.p == 0.5 for module in wide.modules())


def test_resnet32_follows_he_et_al():
    model = models.build("resnet32", 10, (32, 32, 3)).eval()
    assert n_parameters(model) == RESNET32_BACKBONE + 64 * 10 + 10 == 464_154  # "0.46M" (He et al., Table 6)
    stages = [getattr(model, f"layer{n}") for n in (1, 2, 3)]
    assert [len(stage) for stage in stages] == [5, 5, 5]
    assert [stage[-1].conv2.out_channels for stage in stages] == [16, 32, 64]
    assert [stage[0].conv1.stride for stage in stages] == [(1, 1), (2, 2), (2, 2)]
    x = torch.randn(3, 3, 32, 32)
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, 64)
    torch.testing.assert_close(model(x), model.fc(model.features(x)))
    maps = torch.relu(model.bn1(model.conv1(x)))
    assert [tuple((maps := stage(maps)).shape[1:]) for stage in stages] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    torch.testing.assert_close(model.features(x), maps.mean(dim=(2, 3)))
    from imbalance_study import stacked

    assert not stacked.supports(model)  # batch norm: trained one run at a time


def test_resnet32_option_a_shortcut_subsamples_and_pads_channels_with_zeros():
    block = models.build("resnet32", 10, (32, 32, 3)).layer2[0]
    x = torch.randn(2, 16, 8, 8)
    shortcut = block.shortcut(x)
    assert shortcut.shape == (2, 32, 4, 4) and not list(block.shortcut.parameters())
    torch.testing.assert_close(shortcut[:, 8:24], x[:, :, ::2, ::2])  # 8 zero channels on either side
    assert shortcut[:, :8].abs().max() == 0 and shortcut[:, 24:].abs().max() == 0


def test_resnet32_normed_output_is_the_cosine_classifier():
    model = models.build("resnet32", 10, (32, 32, 3), {"normed_output": True}).eval()
    assert model.output_layers == ("fc",) and not hasattr(model.fc, "bias")
    assert n_parameters(model) == RESNET32_BACKBONE + 64 * 10
    x = torch.randn(4, 3, 32, 32)
    features = model.features(x)
    cosine = nn.functional.cosine_similarity(features[:, None, :], model.fc.weight[None, :, :], dim=2)
    torch.testing.assert_close(model(x), cosine)
    assert model(x).abs().max() <= 1 + 1e-6
    torch.manual_seed(0)
    plain = models.build("resnet32", 10, (32, 32, 3)).state_dict()
    torch.manual_seed(0)
    normed = models.build("resnet32", 10, (32, 32, 3), {"normed_output": True}).state_dict()
    backbone = [name for name in plain if not name.startswith("fc.")]
    assert backbone and all(torch.equal(plain[name], normed[name]) for name in backbone)  # paired initial weights


def test_resnet32_init_is_kaiming_normal_fan_in():
    model = models.build("resnet32", 10, (32, 32, 3))
    weight = torch.cat([block.conv2.weight.flatten() for block in model.layer3])  # 64 -> 64, 3x3
    n = weight.numel()
    # The sample sd of n normal draws is off by sd / sqrt(2n): six of those is the tolerance.
    assert weight.std().item() == pytest.approx(np.sqrt(2.0 / (64 * 9)), rel=6 / np.sqrt(2 * n))
    assert torch.all(model.layer3[0].bn2.weight == 1) and torch.all(model.layer3[0].bn2.bias == 0)


def weighted_layers(model):
    return [layer for layer in model.modules() if isinstance(layer, (nn.Conv2d, nn.Linear, models.NormedLinear))]


@pytest.mark.parametrize("name, options", [(name, {}) for name in models.MODELS]
                         + [("resnet32", {"normed_output": True})])
def test_glorot_init_for_every_model(name, options):
    model = models.build(name, 10, IMAGE_SHAPES[name], {**options, "init": "glorot"})
    for layer in weighted_layers(model):
        weight = layer.weight.detach().double()
        fan_in, fan_out = weight[0].numel(), weight.shape[0] * weight[0][0].numel()
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio (2010), eq. 16
        n = weight.numel()
        assert weight.abs().max().item() <= bound
        # Uniform on +-b: sd b / sqrt(3); the sample sd of n draws is off by about sqrt(0.2 / n) of it
        # (the variance's relative sd is sqrt((mu4 / sigma^4 - 1) / n), mu4 / sigma^4 = 9/5): six of those.
        assert weight.std().item() == pytest.approx(bound / np.sqrt(3), rel=6 * np.sqrt(0.2 / n)), layer
        if getattr(layer, "bias", None) is not None:
            assert layer.bias.abs().max() == 0
    for norm in (module for module in model.modules() if isinstance(module, nn.BatchNorm2d)):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_glorot_is_not_each_models_own_init_and_the_own_inits_stay():
    torch.manual_seed(0)
    own = models.build("lenet5", 10, (28, 28))
    torch.manual_seed(0)
    glorot = models.build("lenet5", 10, (28, 28), {"init": "glorot"})
    # conv1: Caffe's xavier bound sqrt(3 / 25), Glorot's sqrt(6 / (25 + 500)): three times apart.
    assert own.conv1.weight.abs().max().item() > np.sqrt(6.0 / 525)
    assert glorot.conv1.weight.abs().max().item() <= np.sqrt(6.0 / 525)
    torch.manual_seed(0)
    mlp = models.build("mlp", 2, (30,))
    torch.manual_seed(0)
    named = models.build("mlp", 2, (30,), {"init": "glorot"})  # already the MLP's own: the same draw
    assert all(torch.equal(a, b) for a, b in zip(mlp.state_dict().values(), named.state_dict().values()))
    torch.manual_seed(0)
    explicit = models.build("lenet5", 10, (28, 28), {"init": "caffe_xavier"})  # the default, named
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), explicit.state_dict().values()))
    with pytest.raises(ValueError, match=r"lenet5.*model_options.init 'kaiming'.*\['caffe_xavier', 'glorot'\]"):
        models.build("lenet5", 10, (28, 28), {"init": "kaiming"})


@pytest.mark.parametrize("name, shape, input_shape", [
    ("lenet5", (28, 28), (1, 28, 28)), ("digits_cnn", (8, 8), (1, 8, 8)), ("allcnn_c", (32, 32, 3), (3, 32, 32)),
    ("resnet10", (64, 64, 3), (3, 64, 64)), ("resnet32", (32, 32, 3), (3, 32, 32)), ("mlp", (30,), (30,))])
def test_output_layers_are_real_modules_and_features_feed_them(name, shape, input_shape):
    model = models.build(name, 10, shape)
    for layer in model.output_layers:
        assert isinstance(getattr(model, layer), nn.Module)
        assert any(True for _ in getattr(model, layer).parameters())
    inputs = torch.randn(2, *input_shape)
    assert model.eval()(inputs).shape == (2, 10)
    assert model.features(inputs).ndim == 2


def test_build_keeps_the_three_argument_form_and_names_bad_options():
    assert isinstance(models.build("lenet5", 10, (28, 28)), models.LeNet5)
    assert isinstance(models.build("lenet5", 10, (28, 28), None), models.LeNet5)
    assert isinstance(models.build("lenet5", 10, (28, 28), {}), models.LeNet5)
    with pytest.raises(ValueError, match="lenet5.*hidden"):
        models.build("lenet5", 10, (28, 28), {"hidden": [3]})
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        models.build("vgg", 10, (28, 28))
    with pytest.raises(ValueError, match="allcnn_c.*needs images"):
        models.build("allcnn_c", 2, (30,))


def test_to_input_for_each_kind():
    raw = torch.from_numpy(np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3))
    scaled = models.to_input(raw)
    assert scaled.shape == (2, 3, 4, 5) and scaled.dtype == torch.float32
    assert scaled[1, 2, 3, 4].item() == raw[1, 3, 4, 2].item() / 256
    grey = models.to_input(torch.full((3, 8, 8), 128, dtype=torch.uint8))
    assert grey.shape == (3, 1, 8, 8) and torch.all(grey == 0.5)

    whitened = torch.randn(2, 4, 5, 3)
    converted = models.to_input(whitened)
    assert converted.shape == (2, 3, 4, 5) and converted.is_contiguous()
    assert torch.equal(converted, whitened.permute(0, 3, 1, 2))  # values unchanged

    tabular = torch.randn(7, 30)
    assert torch.equal(models.to_input(tabular), tabular)
