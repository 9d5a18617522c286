"""Networks of the study.

Every model exposes ``features(x)`` (the penultimate representation, for learning-dynamics scores)
and ``output_layers`` (the attribute names of the layers two-phase training fine-tunes).

Initialisation: each model has its own (``INITS``, its default first); ``model_options: {init:
glorot}`` gives any model Glorot's (Xavier uniform) instead, on every convolution and linear layer,
biases zero (batch norm untouched), as the learning-dynamics protocol of tabular and small-image
studies uses.
"""

from __future__ import annotations

import math

import torch
from torch import nn


GLOROT = "glorot"


class NormedLinear(nn.Module):
    """The cosine classifier LDAM pairs with (Cao et al. 2019): each class score is the cosine between
    the features and the class's weight vector, in [-1, 1]; the loss's scale ``s`` sharpens it.

    The weight is laid out as ``nn.Linear``'s, (classes, features), so that what reads a class's
    output weights (tau-normalisation, Glorot init) treats both alike. No bias.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        # Cao et al.'s init; only the direction of each row matters once it is normalised.
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.normalize(x, dim=1), nn.functional.normalize(self.weight, dim=1))


def glorot_(module: nn.Module) -> None:
    """Glorot & Bengio's uniform init on every convolution and linear layer: weights uniform in
    +-sqrt(6 / (fan_in + fan_out)) (a convolution's fans count its kernel positions), biases zero."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, NormedLinear)):
            nn.init.xavier_uniform_(layer.weight)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)


def caffe_xavier_(module: nn.Module) -> None:
    """Caffe's "xavier" filler: uniform in +-sqrt(3 / fan_in), biases zero."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            bound = math.sqrt(3.0 / fan_in)
            nn.init.uniform_(layer.weight, -bound, bound)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe's MNIST example (the paper's Table 2).

    conv 20@5x5 -> max-pool 2 -> conv 50@5x5 -> max-pool 2 -> fc 500 -> ReLU -> fc K.
    Caffe's version has no non-linearity after the convolutions; neither does this one.
    """

    output_layers = ("fc2",)

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.fc2 = nn.Linear(500, n_classes)
        caffe_xavier_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


class DigitsCNN(nn.Module):
    """A small LeNet-style network for scikit-learn's 8x8 digits.

    conv 16@3x3 (same) -> max-pool 2 -> conv 32@3x3 (same) -> max-pool 2 -> fc 128 -> ReLU -> fc K.
    """

    output_layers = ("fc2",)

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        side = image_size // 4
        self.fc1 = nn.Linear(32 * side * side, 128)
        self.fc2 = nn.Linear(128, n_classes)
        caffe_xavier_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


class AllCNNC(nn.Module):
    """All-CNN-C (Springenberg et al. 2015), the paper's CIFAR-10 network (its Table 3).

    input dropout 0.2
    conv 96@3x3 pad 1, conv 96@3x3 pad 1, conv 96@3x3 stride 2 pad 1 (32 -> 16), dropout 0.5
    conv 192@3x3 pad 1, conv 192@3x3 pad 1, conv 192@3x3 stride 2 pad 1 (16 -> 8), dropout 0.5
    conv 192@3x3 valid (8 -> 6), conv 192@1x1, conv K@1x1, global average over 6x6
    ReLU after every convolution but the last, whose output is the class scores.

    ``features`` is the 192-d global average of the first 1x1 convolution's output (after ReLU):
    the representation the class scores are a linear function of (the 1x1 conv K commutes with the
    average). ``output_layers`` are both 1x1 convolutions, the network's "fully connected" part.

    Init ``kaiming`` (default): He normal (fan_in, ReLU gain), zero biases; nine ReLU layers keep
    their activation scale with it, where Caffe's xavier (variance 1/fan_in) halves the signal's
    variance at every layer. ``caffe_xavier`` is there for comparison.
    """

    output_layers = ("conv8", "conv9")

    def __init__(self, n_classes: int = 10, in_channels: int = 3, image_size: int = 32, init: str = "kaiming"):
        super().__init__()
        self.input_dropout = nn.Dropout(0.2)
        self.conv1 = nn.Conv2d(in_channels, 96, 3, padding=1)
        self.conv2 = nn.Conv2d(96, 96, 3, padding=1)
        self.conv3 = nn.Conv2d(96, 96, 3, stride=2, padding=1)
        self.dropout1 = nn.Dropout(0.5)
        self.conv4 = nn.Conv2d(96, 192, 3, padding=1)
        self.conv5 = nn.Conv2d(192, 192, 3, padding=1)
        self.conv6 = nn.Conv2d(192, 192, 3, stride=2, padding=1)
        self.dropout2 = nn.Dropout(0.5)
        self.conv7 = nn.Conv2d(192, 192, 3)
        self.conv8 = nn.Conv2d(192, 192, 1)
        self.conv9 = nn.Conv2d(192, n_classes, 1)
        if init == "kaiming":
            for layer in self.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
        elif init == "caffe_xavier":
            caffe_xavier_(self)
        else:
            raise ValueError(f"allcnn_c: unknown init '{init}', expected kaiming or caffe_xavier")

    def _last_hidden_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(x)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = self.dropout1(torch.relu(self.conv3(x)))
        x = torch.relu(self.conv4(x))
        x = torch.relu(self.conv5(x))
        x = self.dropout2(torch.relu(self.conv6(x)))
        x = torch.relu(self.conv7(x))
        return torch.relu(self.conv8(x))

    def score_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores per position, (N, K, 6, 6) for 32x32 inputs, before the global average.

        Springenberg et al.'s table (and the paper's Table 3) lists "1x1 conv. K ReLU": the scores
        are rectified before the average and the softmax, so they are kept that way here.
        """
        return torch.relu(self.conv9(self._last_hidden_maps(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._last_hidden_maps(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_maps(x).mean(dim=(2, 3))


def _resnet10(**arguments) -> nn.Module:
    # torchvision.models costs about 1.5 s to import: only the runs that use a ResNet pay for it.
    from .resnet import ResNet10

    return ResNet10(**arguments)


def _resnet32(**arguments) -> nn.Module:
    from .resnet import ResNet32

    return ResNet32(**arguments)


class MLP(nn.Module):
    """A multilayer perceptron for tabular features: Linear -> ReLU [-> Dropout] per hidden width.

    Glorot (xavier uniform) weights, zero biases. An input with more than one dimension is
    flattened. ``features`` is the last hidden layer's activation.
    """

    output_layers = ("output",)

    def __init__(self, n_classes: int, in_features: int, hidden: list[int] | tuple[int, ...] = (64, 32),
                 dropout: float = 0.0):
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.output = nn.Linear(widths[-1], n_classes)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.dropout(torch.relu(layer(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))


MODELS = {"lenet5": LeNet5, "digits_cnn": DigitsCNN, "allcnn_c": AllCNNC, "resnet10": _resnet10,
          "resnet32": _resnet32, "mlp": MLP}
# Each model's own inits, its default first; a model whose list has one takes no ``init`` argument.
INITS = {"lenet5": ("caffe_xavier",), "digits_cnn": ("caffe_xavier",), "allcnn_c": ("kaiming", "caffe_xavier"),
         "resnet10": ("torchvision",), "resnet32": ("kaiming",), "mlp": (GLOROT,)}


def build(name: str, n_classes: int, image_shape: tuple[int, ...], options: dict | None = None) -> nn.Module:
    """Build model ``name`` for examples of ``image_shape``: (H, W), (H, W, C), or (F,) for tabular.

    ``options`` are the model's keyword options (the config's ``model_options``); ``init`` is one of
    the model's own (``INITS``) or ``glorot``, which every model takes.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}', expected one of {sorted(MODELS)}")
    options = dict(options or {})
    init = options.pop("init", None)
    if init is not None and init != GLOROT and init not in INITS[name]:
        raise ValueError(f"model '{name}': model_options.init '{init}' is not one of its inits "
                         f"{list(dict.fromkeys([*INITS[name], GLOROT]))}")
    if init not in (None, GLOROT, INITS[name][0]):  # another of the model's own: the model applies it
        options["init"] = init
    image_shape = tuple(image_shape)
    if name == "mlp":
        arguments = {"in_features": math.prod(image_shape)}
    elif len(image_shape) in (2, 3):
        arguments = {"in_channels": image_shape[2] if len(image_shape) == 3 else 1, "image_size": image_shape[0]}
    else:
        raise ValueError(f"model '{name}' needs images (H, W[, C]), not examples of shape {image_shape}")
    try:
        model = MODELS[name](n_classes=n_classes, **arguments, **options)
    except TypeError as error:
        raise ValueError(f"model '{name}': bad model_options {sorted(options)} ({error})") from error
    if init == GLOROT and INITS[name][0] != GLOROT:
        glorot_(model)
    return model


def to_input(images: torch.Tensor) -> torch.Tensor:
    """Stored examples to network input.

    uint8 images (N, H, W[, C]) -> float (N, C, H, W) in [0, 1) (x / 256, as Caffe's scale);
    floats of PyTorch's default dtype (float32 unless a test sets float64);
    float images (N, H, W[, C]), already preprocessed (CIFAR-10 GCN+ZCA) -> (N, C, H, W), values
    unchanged; float tabular features (N, F) -> unchanged.
    """
    dtype = torch.get_default_dtype()  # float32, unless a float64 reference is being computed
    if images.dtype == torch.uint8:
        if images.ndim == 3:
            images = images.unsqueeze(-1)
        return images.permute(0, 3, 1, 2).to(dtype).mul_(1.0 / 256.0).contiguous()
    if images.ndim == 2:
        return images.to(dtype)
    if images.ndim == 3:
        images = images.unsqueeze(-1)
    return images.permute(0, 3, 1, 2).to(dtype).contiguous()
