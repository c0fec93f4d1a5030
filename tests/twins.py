"""Hand-written PyTorch twins of the zoo networks, independent of netspec.

The Fashion-MNIST networks are written the way Dive into Deep Learning's PyTorch code writes
them (`nn.Sequential`, `Residual`, `Inception`, `vgg_block`, `nin_block`); the ImageNet ones
the way torchvision defines its classes (BasicConv2d, BasicBlock, Bottleneck, ...), since
torchvision itself is not installed. The tests compare the compiled specs against these:
same parameter count, same module structure, and (with the same weights) the same outputs.

`TWINS` maps a spec's `name:` to a function building its twin.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from twins_vision import VISION_TWINS  # tests/ is on sys.path (not a package)
from twins_vit import VIT_TWINS
from twins_series import SERIES_TWINS


# ============================================================ D2L, Fashion-MNIST (1 channel, 10 classes)
def linear_regression() -> nn.Module:
    """D2L 3.5: `nn.Linear(2, 1)`."""
    return nn.Sequential(nn.Linear(2, 1))


def softmax_regression() -> nn.Module:
    """D2L 4.5."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def mlp() -> nn.Module:
    """D2L 5.2."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def mlp_dropout(dropout1: float = 0.2, dropout2: float = 0.5) -> nn.Module:
    """D2L 5.6 (first edition 4.6)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout1),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout2),
        nn.Linear(256, 10),
    )


def lenet() -> nn.Module:
    """D2L 7.6."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def lenet_bn() -> nn.Module:
    """D2L 8.5, concise implementation."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def alexnet() -> nn.Module:
    """D2L 8.1."""
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10),
    )


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Module:
    """D2L 8.2."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


CONV_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg(conv_arch: tuple[tuple[int, int], ...] = CONV_ARCH) -> nn.Module:
    """D2L 8.2: `vgg(conv_arch)`."""
    conv_blks = []
    in_channels = 1
    for num_convs, out_channels in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10),
    )


def vgg11_small(ratio: int = 4) -> nn.Module:
    """D2L 8.2: the network the book trains, `small_conv_arch` with channels // ratio."""
    return vgg(tuple((pair[0], pair[1] // ratio) for pair in CONV_ARCH))


def nin_block(in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Module:
    """D2L 8.3."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


def nin() -> nn.Module:
    """D2L 8.3."""
    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )


class Inception(nn.Module):
    """D2L 8.4: c1--c4 are the output channels of the four paths."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet() -> nn.Module:
    """D2L 8.4."""
    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b3 = nn.Sequential(
        Inception(192, 64, (96, 128), (16, 32), 32),
        Inception(256, 128, (128, 192), (32, 96), 64),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b5 = nn.Sequential(
        Inception(832, 256, (160, 320), (32, 128), 128),
        Inception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))


class Residual(nn.Module):
    """D2L 8.6: the residual block of ResNet."""

    def __init__(self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3:
            x = self.conv3(x)
        y += x
        return F.relu(y)


def resnet_block(input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False) -> list[nn.Module]:
    """D2L 8.6."""
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def resnet18() -> nn.Module:
    """D2L 8.6."""
    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


# ============================================================ torchvision, ImageNet (3 channels, 1000 classes)
class AlexNet(nn.Module):
    """torchvision.models.AlexNet."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def make_layers(cfg: list[int | str]) -> nn.Sequential:
    """torchvision.models.vgg.make_layers without batch norm."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(v)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision.models.VGG."""

    def __init__(self, features: nn.Module, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def vgg16() -> nn.Module:
    return VGG(make_layers(VGG16_CFG))


class BasicConv2d(nn.Module):
    """torchvision.models.googlenet.BasicConv2d."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionV1(nn.Module):
    """torchvision.models.googlenet.Inception (its third branch is 3×3, not the paper's 5×5)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision.models.GoogLeNet with aux_logits=False, transform_input=False."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = InceptionV1(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = InceptionV1(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = InceptionV1(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = InceptionV1(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = InceptionV1(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = InceptionV1(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = InceptionV1(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = InceptionV1(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = InceptionV1(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (v1.5: the stride is on conv2, the 3×3)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18_imagenet() -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2])


def resnet50_imagenet() -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 6, 3])


# ============================================================ D2L sequences (chapters 10-11)
class RowClassifier(nn.Module):
    """An RNN classifier over Fashion-MNIST rows (28 steps of 28 pixels): the recurrent layer's
    final hidden state, then a linear layer, as D2L 10's RNN models use nn.LSTM / nn.GRU."""

    def __init__(self, cell: type[nn.Module], num_hiddens: int = 128, num_layers: int = 1):
        super().__init__()
        self.rnn = cell(28, num_hiddens, num_layers=num_layers, batch_first=True)
        self.linear = nn.Linear(num_hiddens, 10)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(X.reshape(-1, 28, 28))
        H = state[0] if isinstance(state, tuple) else state  # LSTM: (H, C)
        return self.linear(H[-1])


class PatchEmbedding(nn.Module):
    """D2L 11.8 (the book's LazyConv2d given its one input channel)."""

    def __init__(self, img_size: int = 96, patch_size: int = 16, num_hiddens: int = 512):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.conv = nn.Conv2d(1, num_hiddens, kernel_size=patch_size, stride=patch_size)  # the book's LazyConv2d, on 1 channel

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.conv(X).flatten(2).transpose(1, 2)


class ViTMLP(nn.Module):
    """D2L 11.8."""

    def __init__(self, mlp_num_hiddens: int, mlp_num_outputs: int, dropout: float = 0.5):
        super().__init__()
        self.dense1 = nn.Linear(mlp_num_outputs, mlp_num_hiddens)
        self.gelu = nn.GELU()
        self.dropout1 = nn.Dropout(dropout)
        self.dense2 = nn.Linear(mlp_num_hiddens, mlp_num_outputs)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.dense2(self.dropout1(self.gelu(self.dense1(x)))))


class MultiHeadAttention(nn.Module):
    """D2L 11.5 (W_q, W_k, W_v, W_o; transpose_qkv / transpose_output), with its
    DotProductAttention's softmax(QKᵀ/√d)·dropout written as scaled_dot_product_attention,
    which draws the weights' dropout mask as netspec's nn.MultiheadAttention does."""

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float, bias: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_k = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_v = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)
        return X.permute(0, 2, 1, 3)  # (batch, heads, steps, width / heads)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """`causal`: query t sees keys ≤ t (the book's dec_valid_lens 1..T in training)."""
        q, k, v = self.transpose_qkv(self.W_q(queries)), self.transpose_qkv(self.W_k(keys)), self.transpose_qkv(self.W_v(values))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=causal)
        out = out.permute(0, 2, 1, 3)
        return self.W_o(out.reshape(out.shape[0], out.shape[1], -1))


class ViTBlock(nn.Module):
    """D2L 11.8."""

    def __init__(self, num_hiddens: int, norm_shape: int, mlp_num_hiddens: int, num_heads: int, dropout: float, use_bias: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(norm_shape)
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.ln2 = nn.LayerNorm(norm_shape)
        self.mlp = ViTMLP(mlp_num_hiddens, num_hiddens, dropout)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X + self.attention(*([self.ln1(X)] * 3))
        return X + self.mlp(self.ln2(X))


class ViT(nn.Module):
    """D2L 11.8's ViT with the book's settings (96, 16, 512, 2048, 8 heads, 2 blocks, 0.1, 0.1)."""

    def __init__(self, img_size: int = 96, patch_size: int = 16, num_hiddens: int = 512, mlp_num_hiddens: int = 2048,
                 num_heads: int = 8, num_blks: int = 2, emb_dropout: float = 0.1, blk_dropout: float = 0.1,
                 use_bias: bool = False, num_classes: int = 10):
        super().__init__()
        self.patch_embedding = PatchEmbedding(img_size, patch_size, num_hiddens)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, num_hiddens))
        num_steps = self.patch_embedding.num_patches + 1  # Add the cls token
        self.pos_embedding = nn.Parameter(torch.randn(1, num_steps, num_hiddens) * 0.02)
        self.dropout = nn.Dropout(emb_dropout)
        self.blks = nn.Sequential()
        for i in range(num_blks):
            self.blks.add_module(f"{i}", ViTBlock(num_hiddens, num_hiddens, mlp_num_hiddens, num_heads, blk_dropout, use_bias))
        self.head = nn.Sequential(nn.LayerNorm(num_hiddens), nn.Linear(num_hiddens, num_classes))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = self.patch_embedding(X)
        X = torch.cat((self.cls_token.expand(X.shape[0], -1, -1), X), 1)
        X = self.dropout(X + self.pos_embedding)
        for blk in self.blks:
            X = blk(X)
        return self.head(X[:, 0])


class AddNorm(nn.Module):
    """D2L 11.7: layer norm of a residual sum, dropout on the sublayer's output."""

    def __init__(self, norm_shape: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(self.dropout(Y) + X)


class PositionWiseFFN(nn.Module):
    """D2L 11.7 (its LazyLinear given the input width)."""

    def __init__(self, ffn_num_hiddens: int, ffn_num_outputs: int):
        super().__init__()
        self.dense1 = nn.Linear(ffn_num_outputs, ffn_num_hiddens)
        self.relu = nn.ReLU()
        self.dense2 = nn.Linear(ffn_num_hiddens, ffn_num_outputs)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.relu(self.dense1(X)))


class TransformerEncoderBlock(nn.Module):
    """D2L 11.7 (post-norm)."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float, use_bias: bool = False):
        super().__init__()
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention(X, X, X))
        return self.addnorm2(Y, self.ffn(Y))


class PositionalEncoding(nn.Module):
    """D2L 11.6: a fixed sinusoidal table P (a plain tensor, not state), then dropout."""

    def __init__(self, num_hiddens: int, dropout: float, max_len: int = 1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.P = torch.zeros((1, max_len, num_hiddens))
        X = torch.arange(max_len, dtype=torch.float32).reshape(-1, 1) / torch.pow(
            10000, torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        self.P[:, :, 0::2] = torch.sin(X)
        self.P[:, :, 1::2] = torch.cos(X)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X + self.P[:, :X.shape[1], :].to(X.device)
        return self.dropout(X)


class RowTransformer(nn.Module):
    """D2L 11.7's TransformerEncoder over Fashion-MNIST rows: a linear embedding of each row
    (for the token embedding), positions, two encoder blocks, the mean over the steps, a head."""

    def __init__(self, num_hiddens: int = 64, ffn_num_hiddens: int = 128, num_heads: int = 4, num_blks: int = 2, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Linear(28, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.Sequential()
        for i in range(num_blks):
            self.blks.add_module(str(i), TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout))
        self.head = nn.Linear(num_hiddens, 10)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = self.pos_encoding(self.embed(X.reshape(-1, 28, 28)))
        for blk in self.blks:
            X = blk(X)
        return self.head(X.mean(dim=1))


class TransformerDecoderBlock(nn.Module):
    """D2L 11.7 (post-norm), as it runs in training: the whole target sequence at once, its
    self-attention causal (dec_valid_lens 1..T), then attention to the encoder's outputs."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float, use_bias: bool = False):
        super().__init__()
        self.attention1 = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.attention2 = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm2 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm3 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, enc_outputs: torch.Tensor) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention1(X, X, X, causal=True))
        Z = self.addnorm2(Y, self.attention2(Y, enc_outputs, enc_outputs))
        return self.addnorm3(Z, self.ffn(Z))


class RowColumnTransformer(nn.Module):
    """specs/transformer_decoder.yaml: D2L 11.7's encoder block over the image's rows, its
    decoder block over the columns with the encoded rows as memory, the last column's output
    to a linear head."""

    def __init__(self, num_hiddens: int = 64, ffn_num_hiddens: int = 128, num_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Linear(28, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.encoder = TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout)
        self.tgt_embed = nn.Linear(28, num_hiddens)
        self.tgt_pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.decoder = TransformerDecoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout)
        self.head = nn.Linear(num_hiddens, 10)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X.reshape(-1, 28, 28)
        memory = self.encoder(self.pos_encoding(self.embed(X)))
        Y = self.decoder(self.tgt_pos_encoding(self.tgt_embed(X.transpose(1, 2))), memory)
        return self.head(Y[:, -1])


def encoder_state(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """netspec's transformer_encoder_layer and transformer_decoder_layer names under D2L's
    (TransformerEncoderBlock, TransformerDecoderBlock)."""
    out: dict[str, torch.Tensor] = {}
    renames = {".ln1.": ".addnorm1.ln.", ".ln2.": ".addnorm2.ln.", ".ln3.": ".addnorm3.ln.", ".dense1.": ".ffn.dense1.",
               ".dense2.": ".ffn.dense2.", ".out_proj.": ".W_o."}  # ln3: the decoder's; attention, attention1, attention2
    for key, value in ours.items():
        if key.endswith(".in_proj_weight"):
            prefix = key.removesuffix("in_proj_weight")
            for name, part in zip(("W_q", "W_k", "W_v"), value.chunk(3)):
                out[f"{prefix}{name}.weight"] = part
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def vit_state(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """netspec's ViT state_dict under D2L's names: nn.MultiheadAttention packs W_q, W_k, W_v
    into in_proj_weight (rows in that order) and names W_o out_proj."""
    out: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        if key.endswith(".attention.in_proj_weight"):
            prefix = key.removesuffix("in_proj_weight")
            for name, part in zip(("W_q", "W_k", "W_v"), value.chunk(3)):
                out[f"{prefix}{name}.weight"] = part
        elif key.endswith(".attention.out_proj.weight"):
            out[key.replace("out_proj", "W_o")] = value
        else:
            out[key] = value
    return out


# ============================================================ specs/fast (hand-written PyTorch)
def lenet_fast() -> nn.Module:
    """specs/fast/lenet.yaml: LeNet's sizes with batch norm, ReLU and max pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.BatchNorm1d(120), nn.ReLU(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def fmnist_fast() -> nn.Module:
    """specs/fast/fmnist.yaml: two stages of two 3×3 conv-BN-ReLU (24, 48 channels), dropout, 96 units."""

    def conv(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, kernel_size=3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *conv(1, 24), *conv(24, 24), nn.MaxPool2d(2, 2), *conv(24, 48), *conv(48, 48), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(48 * 7 * 7, 96), nn.BatchNorm1d(96), nn.ReLU(), nn.Linear(96, 10),
    )


def mlp_tied() -> nn.Module:
    """D2L 6.2.2's tied parameters: one `shared` layer at two places of the Sequential."""
    shared = nn.Linear(256, 256)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(256, 10))


# ============================================================ spec name -> twin
TWINS: dict[str, Callable[[], nn.Module]] = {
    "linear_regression": linear_regression,
    "linear_regression_closed_form": linear_regression,
    "softmax_regression": softmax_regression,
    "mlp": mlp,
    "mlp_dropout": mlp_dropout,
    "lenet": lenet,
    "lenet_bn": lenet_bn,
    "alexnet": alexnet,
    "vgg11": vgg,
    "vgg11_small": vgg11_small,
    "nin": nin,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "alexnet_imagenet": AlexNet,
    "vgg16_imagenet": vgg16,
    "googlenet_imagenet": GoogLeNet,
    "resnet18_imagenet": resnet18_imagenet,
    "resnet50_imagenet": resnet50_imagenet,
    "vit": ViT,
    "lstm": lambda: RowClassifier(nn.LSTM),
    "gru": lambda: RowClassifier(nn.GRU),
    "transformer_encoder": RowTransformer,
    "transformer_decoder": RowColumnTransformer,
    "lenet_fast": lenet_fast,
    "fmnist_fast": fmnist_fast,
    "mlp_tied": mlp_tied,
}
TWINS.update(VISION_TWINS)  # today's vision networks: tests/twins_vision.py
TWINS.update(VIT_TWINS)  # torchvision's ViT-B/16: tests/twins_vit.py
TWINS.update(SERIES_TWINS)  # the sine-wave regressors: tests/twins_series.py

# Twins whose names differ from the spec's in a known way: spec name -> our state_dict in the
# twin's names. These are compared by name (strict load) instead of pairing layers in call order.
STATE_MAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {"vit": vit_state, "transformer_encoder": encoder_state,
              "transformer_decoder": encoder_state}
# the twin's Sequential holds its shared layer at 3 and 5 (both keys, one tensor, as ours)
STATE_MAPS["mlp_tied"] = lambda ours: {k.replace("shared.", "3.", 1) if k.startswith("shared.") else k: v for k, v in ours.items()}


# --------------------------------------------------------------------------- pairing with netspec's modules
_CONTAINERS = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _torch_class(m: nn.Module) -> type | None:
    """The torch.nn layer class a module is (LayerNorm for torchvision's LayerNorm2d), or None
    for containers and a model's own classes."""
    return next((c for c in type(m).__mro__ if c.__module__.startswith("torch.nn") and c not in _CONTAINERS and issubclass(c, nn.Module)), None)


def _is_layer(m: nn.Module) -> bool:
    return _torch_class(m) is not None


def loose_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters a container or a model class holds itself (ConvNeXt's layer_scale), in order."""
    return [p for m in module.modules() if not _is_layer(m) for p in m.parameters(recurse=False)]


def stateful_in_call_order(module: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The layers that own parameters or buffers, in the order a forward pass first calls them.
    A layer inside another (nn.MultiheadAttention's out_proj, which it never calls) is part of
    the outer layer's state, not a layer of its own."""
    layers = [name for name, m in module.named_modules() if _is_layer(m)]
    inner = {name for name in layers if any(name.startswith(outer + ".") for outer in layers)}
    owners = [
        m for name, m in module.named_modules()
        if name in layers and name not in inner and (any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)))
    ]
    order: list[nn.Module] = []

    def hook(m: nn.Module, args: Any, out: Any) -> None:
        if not any(m is seen for seen in order):
            order.append(m)

    handles = [m.register_forward_hook(hook) for m in owners]
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    assert len(order) == len(owners), f"{len(owners) - len(order)} stateful modules never run"
    return order


def layer_signature(module: nn.Module) -> tuple[str, list[tuple[str, tuple[int, ...]]]]:
    cls = _torch_class(module) or type(module)
    return cls.__name__, [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def copy_state(source: nn.Module, target: nn.Module, x: torch.Tensor) -> None:
    """Load `source`'s weights into `target`, pairing their stateful layers in call order."""
    pairs = list(zip(stateful_in_call_order(source, x), stateful_in_call_order(target, x), strict=True))
    for a, b in pairs:
        assert layer_signature(a) == layer_signature(b)
        b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p, q in zip(loose_parameters(source), loose_parameters(target), strict=True):
            q.copy_(p)
