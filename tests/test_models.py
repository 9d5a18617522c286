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


@pytest.mark.parametrize("name, shape, input_shape", [
    ("lenet5", (28, 28), (1, 28, 28)), ("digits_cnn", (8, 8), (1, 8, 8)), ("allcnn_c", (32, 32, 3), (3, 32, 32)),
    ("resnet10", (64, 64, 3), (3, 64, 64)), ("mlp", (30,), (30,))])
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
