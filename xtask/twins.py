"""zoo's image families in PyTorch: one twin per family, built from a resolved `[model]` table.

    import twins
    model = twins.build(config["model"], twins.input_shape(config["data"]))

`config` is a zoo config as `zoo check CONFIG --print-config` writes it (every default filled
in). A twin has zoo's layers, widths, pooling, normalization, dropout, auxiliary heads and
parameter count, under the names of the family's `pytorch_layout` (torchvision's for the
families it ships, zoo's module paths for the others), so its `state_dict` is what `zoo import`
reads; `loss` is the family's training loss. xtask/pytorch_mirror.py times the twins beside
zoo; zoo/tests/pytorch/make_fixtures.py writes the parity fixtures from them.

A new family: a builder `(m, shape) -> nn.Module` registered with `@family(...)` under zoo's
`KINDS`, and a case in make_fixtures.py's CASES.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

FAMILIES = {}


def family(*kinds):
    """Registers a twin builder `(m, shape) -> nn.Module` under zoo's `model.kind` names."""
    def register(builder):
        for kind in kinds:
            FAMILIES[kind] = builder
        return builder
    return register


def build(m, shape):
    """The twin of the resolved `[model]` table `m` for inputs of `shape` (see input_shape)."""
    if m["kind"] not in FAMILIES:
        raise SystemExit(f"{m['kind']}: no PyTorch twin (only zoo's image families have one)")
    return FAMILIES[m["kind"]](m, shape)


def scaled(channels, width):
    """zoo's width scaling: rounded half away from zero, at least 1."""
    return max(1, int(math.floor(channels * width + 0.5)))


# (channels, height, width, classes) of each dataset's stored images (datasets/src/source.rs).
DATASETS = {"fashion-mnist": (1, 28, 28, 10), "mnist": (1, 28, 28, 10), "kmnist": (1, 28, 28, 10),
            "cifar10": (3, 32, 32, 10), "cifar100": (3, 32, 32, 100), "imagenet": (3, 224, 224, 1000),
            "image-folder": (3, 224, 224, 0)}


def input_shape(data):
    """(channels, height, width, classes) of the resolved `[data]` table's input, as zoo's
    `image_input`: `resize` sets the side; a folder's classes are its train/ subfolders, else
    `classes` or `one_vs_rest` select them."""
    c, h, w, classes = DATASETS[data["dataset"]]
    if data.get("resize"):
        h = w = data["resize"]
    folder = os.path.join(data.get("dir") or "", "train")
    if data["dataset"] in ("image-folder", "imagenet") and os.path.isdir(folder):
        classes = sum(entry.is_dir() for entry in os.scandir(folder))
    elif data.get("classes"):
        classes = len(data["classes"])
    elif data.get("one_vs_rest") is not None:
        classes = 2
    return c, h, w, classes


def loss(m):
    """zoo's training loss for the family: cross-entropy, the multiclass hinge, logistic BCE,
    or GoogLeNet's with its auxiliary heads' losses added."""
    if m["kind"] == "logistic":
        return lambda out, y: F.binary_cross_entropy_with_logits(out[:, 1], y.float())
    if m["kind"] == "softmax" and m["loss"] == "multiclass-svm":
        margin = m["margin"]

        def hinge(out, y):
            correct = out.gather(1, y[:, None])
            return ((out - correct + margin).clamp_min(0).sum(1) - margin).mean()
        return hinge
    if m["kind"] == "googlenet":
        weight = m["aux_weight"]

        def with_aux(out, y):
            logits, aux = out if isinstance(out, tuple) else (out, [])
            return F.cross_entropy(logits, y) + sum(weight * F.cross_entropy(a, y) for a in aux)
        return with_aux
    return F.cross_entropy


def output_shape(module, shape):
    """`module`'s output shape on one zero image of `shape`, in eval mode (batch-norm statistics
    untouched)."""
    training = module.training
    with torch.no_grad():
        out = module.eval()(torch.zeros(1, *shape[:3]))
    module.train(training)
    return out.shape


# Functions, not modules: a twin registers only the modules its PyTorch original has, so that
# its `state_dict` (whose `_metadata` names every module) is the original's byte for byte.
ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
               "leaky-relu": lambda x: F.leaky_relu(x, 0.01), "elu": F.elu}


# ---------------------------------------------------------------------------------------------
# Linear models, the MLP, LeNet-5 and the recurrent classifier: zoo's module paths.


@family("softmax", "logistic")
class LinearClassifier(nn.Module):
    """Softmax regression (`fc` to the classes) or logistic regression (`fc` to one log-odds,
    read as the scores [0, z] as zoo's `LogisticRegression`)."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        self.logistic = m["kind"] == "logistic"
        self.fc = nn.Linear(c * h * w, 1 if self.logistic else classes)

    def forward(self, x):
        z = self.fc(x.flatten(1))
        return torch.cat([torch.zeros_like(z), z], 1) if self.logistic else z


class MlpBlock(nn.Module):
    def __init__(self, d_in, d_out, m):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.BatchNorm1d(d_out) if m["batch_norm"] else None
        self.activation = ACTIVATIONS[m["activation"]]
        self.dropout = nn.Dropout(m["dropout"]) if m["dropout"] > 0 else None

    def forward(self, x):
        x = self.linear(x)
        x = self.activation(self.norm(x) if self.norm is not None else x)
        return self.dropout(x) if self.dropout is not None else x


@family("mlp")
class Mlp(nn.Module):
    """linear -> [batch norm] -> activation -> [dropout] per hidden width, a linear head."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        widths = [c * h * w] + m["hidden"]
        self.hidden = nn.ModuleList(MlpBlock(a, b, m) for a, b in zip(widths, m["hidden"]))
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)


@family("lenet5")
class LeNet5(nn.Module):
    """conv1 5x5 (padded to the 32x32 design) -> act -> pool 2/2 -> conv2 5x5 -> act -> pool ->
    fc1 120 -> fc2 84 -> fc3, `activation` and `pooling` (max or avg) from the config."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        padding = m.get("conv1_padding")
        if padding is None:
            padding = max(0, 32 - min(h, w)) // 2
        side = lambda s: ((s + 2 * padding - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(c, 6, 5, padding=padding)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side(h) * side(w), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)
        self.act = ACTIVATIONS[m["activation"]]
        self.pool = F.max_pool2d if m["pooling"] == "max" else F.avg_pool2d

    def forward(self, x):
        x = self.pool(self.act(self.conv1(x)), 2)
        x = self.pool(self.act(self.conv2(x)), 2).flatten(1)
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


@family("recurrent")
class Recurrent(nn.Module):
    """The README's `Rows`: an image as `height` steps of `channels * width` values through an
    `nn.LSTM`/`nn.GRU`/`nn.RNN` named `rnn`, then a linear `head` on the readout."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[m["cell"]]
        self.rnn = cell(c * w, m["hidden"], num_layers=m["layers"], batch_first=True,
                        bidirectional=m["bidirectional"], dropout=m["dropout"] if m["layers"] > 1 else 0.0)
        self.head = nn.Linear(m["hidden"] * (2 if m["bidirectional"] else 1), classes)
        self.readout, self.hidden = m["readout"], m["hidden"]

    def forward(self, x):
        b, c, h, w = x.shape
        out, _ = self.rnn(x.permute(0, 2, 1, 3).reshape(b, h, c * w))
        if self.readout == "mean":
            return self.head(out.mean(1))
        if self.readout == "last" and self.rnn.bidirectional:
            # The forward direction ends at the last step, the reverse one at the first.
            return self.head(torch.cat([out[:, -1, :self.hidden], out[:, 0, self.hidden:]], 1))
        return self.head(out[:, -1])


# ---------------------------------------------------------------------------------------------
# AlexNet / ZFNet and VGG: torchvision's `features` / `avgpool` / `classifier`, `features.N` and
# `classifier.N` counting every module.


def classifier(d_in, hidden, classes, dropout, before):
    """Hidden linear + ReLU layers with dropout before each (AlexNet) or after (VGG)."""
    layers = []
    for width in hidden:
        drop = [nn.Dropout(dropout)]
        layers += (drop if before else []) + [nn.Linear(d_in, width), nn.ReLU()] + ([] if before else drop)
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, classes))


class Features(nn.Module):
    """features -> [adaptive average pool] -> flatten -> classifier (sized from a dry run)."""

    def __init__(self, layers, m, shape, dropout_before):
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(tuple(m["avgpool"])) if m.get("avgpool") else nn.Identity()
        d_in = math.prod(output_shape(nn.Sequential(self.features, self.avgpool), shape)[1:])
        hidden = [scaled(x, m["width"]) for x in m["classifier"]]
        self.classifier = classifier(d_in, hidden, shape[3], m["dropout"], dropout_before)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def conv_row(channels, kernel, stride, padding, pool, lrn):
    return dict(channels=channels, kernel=kernel, stride=stride, padding=padding, pool=pool, lrn=lrn)


# The papers' tables (zoo's ALEXNET_ROWS and ZFNET_ROWS), used where `features` is absent.
PAPER_ROWS = {
    "alexnet": [conv_row(96, 11, 4, 0, True, True), conv_row(256, 5, 1, 2, True, True),
                conv_row(384, 3, 1, 1, False, False), conv_row(384, 3, 1, 1, False, False),
                conv_row(256, 3, 1, 1, True, False)],
    "zfnet": [conv_row(96, 7, 2, 1, True, True), conv_row(256, 5, 2, 0, True, True),
              conv_row(512, 3, 1, 1, False, False), conv_row(1024, 3, 1, 1, False, False),
              conv_row(512, 3, 1, 1, True, False)],
}


@family("alexnet", "zfnet")
def alexnet(m, shape):
    """Per row conv -> ReLU -> [max pool] -> [LRN]; dropout before each hidden layer. The
    pooling rounds up by default for ZFNet only."""
    ceil = m.get("ceil_mode")
    ceil = (m["kind"] == "zfnet") if ceil is None else ceil
    layers, c_in = [], shape[0]
    for r in m.get("features") or PAPER_ROWS[m["kind"]]:
        c = scaled(r["channels"], m["width"])
        layers += [nn.Conv2d(c_in, c, r["kernel"], r["stride"], r["padding"]), nn.ReLU()]
        if r["pool"]:
            layers.append(nn.MaxPool2d(m["pool_kernel"], m["pool_stride"], ceil_mode=ceil))
        if r["lrn"]:
            layers.append(nn.LocalResponseNorm(m["lrn_size"], m["lrn_alpha"], m["lrn_beta"], m["lrn_k"]))
        c_in = c
    return Features(layers, m, shape, dropout_before=True)


# The paper's configurations A, B, D and E, used where `layers` is absent.
VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
       13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
       16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
       19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
            512, 512, 512, 512, "M"]}


@family("vgg")
def vgg(m, shape):
    """3x3/1 pad 1 conv -> [batch norm] -> ReLU per channel count, a 2x2/2 max pool per "M";
    dropout after each hidden layer."""
    layers, c_in = [], shape[0]
    for item in m.get("layers") or VGG[m["depth"]]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=m["ceil_mode"]))
            continue
        c = scaled(item, m["width"])
        layers.append(nn.Conv2d(c_in, c, 3, padding=1))
        if m["batch_norm"]:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.ReLU())
        c_in = c
    return Features(layers, m, shape, dropout_before=False)


# ---------------------------------------------------------------------------------------------
# GoogLeNet: torchvision's names (`conv1..3`, `inception3a.branch1`, `.branch2.0`, `aux1`, `fc`).


class BasicConv2d(nn.Module):
    """conv -> [batch norm] -> ReLU, torchvision's unit; the conv has a bias only without BN."""

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, bn_eps=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bn_eps is None)
        self.bn = nn.BatchNorm2d(c_out, eps=bn_eps) if bn_eps is not None else None

    def forward(self, x):
        x = self.conv(x)
        return F.relu(self.bn(x) if self.bn is not None else x)


class Inception(nn.Module):
    """One row of the table (1x1; 3x3 reduce, 3x3; 5x5 reduce, `k3`; pool proj), concatenated."""

    def __init__(self, c_in, row, k3, bn_eps):
        super().__init__()
        c1, r3, c3, r5, c5, pool_proj = row
        self.branch1 = BasicConv2d(c_in, c1, 1, bn_eps=bn_eps)
        self.branch2 = nn.Sequential(BasicConv2d(c_in, r3, 1, bn_eps=bn_eps),
                                     BasicConv2d(r3, c3, 3, padding=1, bn_eps=bn_eps))
        self.branch3 = nn.Sequential(BasicConv2d(c_in, r5, 1, bn_eps=bn_eps),
                                     BasicConv2d(r5, c5, k3, padding=k3 // 2, bn_eps=bn_eps))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv2d(c_in, pool_proj, 1, bn_eps=bn_eps))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """avg pool 5x5/3 -> 1x1 conv -> fc1 -> ReLU -> dropout -> fc2, on the map of 4a or 4d."""

    def __init__(self, map_shape, m, classes, bn_eps):
        super().__init__()
        s = lambda x: scaled(x, m["width"])
        self.pool = nn.AvgPool2d(5, 3)
        self.conv = BasicConv2d(map_shape[0], s(128), 1, bn_eps=bn_eps)
        pooled = output_shape(self.pool, map_shape)
        self.fc1 = nn.Linear(s(128) * pooled[2] * pooled[3], s(1024))
        self.fc2 = nn.Linear(s(1024), classes)
        self.dropout = nn.Dropout(m["aux_dropout"])

    def forward(self, x):
        x = self.conv(self.pool(x)).flatten(1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


# The paper's Table 1 by stage (a max pool between stages), and the modules feeding the
# auxiliary heads.
GOOGLENET = [[("3a", [64, 96, 128, 16, 32, 32]), ("3b", [128, 128, 192, 32, 96, 64])],
             [("4a", [192, 96, 208, 16, 48, 64]), ("4b", [160, 112, 224, 24, 64, 64]),
              ("4c", [128, 128, 256, 24, 64, 64]), ("4d", [112, 144, 288, 32, 64, 64]),
              ("4e", [256, 160, 320, 32, 128, 128])],
             [("5a", [256, 160, 320, 32, 128, 128]), ("5b", [384, 192, 384, 48, 128, 128])]]
AUX_AFTER = ["4a", "4d"]


@family("googlenet")
class GoogLeNet(nn.Module):
    """The stem (conv1 7x7/2 -> max pool -> [LRN], or conv1 3x3 for the small stem; conv2 1x1,
    conv3 3x3 -> max pool -> [LRN]), the table's modules, average pool, dropout and fc; optional
    batch norm, auxiliary heads and torchvision's `transform_input`. In training with heads the
    output is (logits, [aux logits])."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        s, bn = (lambda x: scaled(x, m["width"])), (m["batch_norm_eps"] if m["batch_norm"] else None)
        lrn = (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0) if m["lrn"] else None)
        pool = lambda k: nn.MaxPool2d(k, 2, ceil_mode=True)
        self.transform_input = m["transform_input"]
        if m["stem"] == "imagenet":
            self.conv1 = BasicConv2d(c, s(64), 7, 2, 3, bn_eps=bn)
            self.maxpool1, self.lrn1 = pool(3), lrn()
        else:
            self.conv1 = BasicConv2d(c, s(64), 3, 1, 1, bn_eps=bn)
            self.maxpool1 = self.lrn1 = None
        self.conv2 = BasicConv2d(s(64), s(64), 1, bn_eps=bn)
        self.conv3 = BasicConv2d(s(64), s(192), 3, 1, 1, bn_eps=bn)
        self.maxpool2, self.lrn2 = pool(3), lrn()
        c_in = s(192)
        for stage in GOOGLENET:
            for name, row in stage:
                row = [s(x) for x in row]
                setattr(self, "inception" + name, Inception(c_in, row, m["branch3_kernel"], bn))
                c_in = row[0] + row[2] + row[4] + row[5]
        # The pools before 4a and 5a.
        self.maxpool3, self.maxpool4 = (pool(k) for k in m["stage_pool_kernels"])
        self.aux_weight = m["aux_weight"]
        if m["aux_classifiers"]:
            training = self.training
            with torch.no_grad():
                _, maps = self.eval().features(torch.zeros(1, c, h, w), with_aux=True)
            self.train(training)
            self.aux1, self.aux2 = (InceptionAux(x.shape[1:], m, classes, bn) for x in maps)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(m["dropout"])
        self.fc = nn.Linear(c_in, classes)

    def features(self, x, with_aux):
        """The last module's map and, when `with_aux`, the maps the auxiliary heads read."""
        if self.transform_input:
            # Per RGB channel x * std / 0.5 + (mean - 0.5) / 0.5, torchvision's expression.
            stats = [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)]
            x = torch.cat([x[:, i:i + 1] * (std / 0.5) + (mean - 0.5) / 0.5
                           for i, (mean, std) in enumerate(stats)], 1)
        optional = lambda module, x: module(x) if module is not None else x
        x = optional(self.lrn1, optional(self.maxpool1, self.conv1(x)))
        x = optional(self.lrn2, self.maxpool2(self.conv3(self.conv2(x))))
        maps = []
        for i, stage in enumerate(GOOGLENET):
            if i > 0:
                x = (self.maxpool3, self.maxpool4)[i - 1](x)
            for name, _ in stage:
                x = getattr(self, "inception" + name)(x)
                if with_aux and name in AUX_AFTER:
                    maps.append(x)
        return x, maps

    def forward(self, x):
        heads = self.training and self.aux1 is not None
        x, maps = self.features(x, with_aux=heads)
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return (logits, [self.aux1(maps[0]), self.aux2(maps[1])]) if heads else logits


# ---------------------------------------------------------------------------------------------
# ResNet: torchvision's names (`conv1`, `bn1`, `layer1.0.conv1`, `downsample.0`, `fc`).


class Block(nn.Module):
    """torchvision's BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 with the stride, 1x1 to
    4x), attribute for attribute, each conv followed by its batch norm, and the 1x1 projection
    (`downsample`) where the shape changes."""

    def __init__(self, kind, c_in, c, stride):
        super().__init__()
        conv = lambda a, b, k, st: nn.Conv2d(a, b, k, st, k // 2, bias=False)
        out = c * (4 if kind == "bottleneck" else 1)
        if kind == "basic":
            self.conv1, self.bn1, self.relu = conv(c_in, c, 3, stride), nn.BatchNorm2d(c), nn.ReLU()
            self.conv2, self.bn2 = conv(c, c, 3, 1), nn.BatchNorm2d(c)
            self.conv3 = self.bn3 = None
        else:
            self.conv1, self.bn1 = conv(c_in, c, 1, 1), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = conv(c, c, 3, stride), nn.BatchNorm2d(c)
            self.conv3, self.bn3, self.relu = conv(c, out, 1, 1), nn.BatchNorm2d(out), nn.ReLU()
        self.downsample = (nn.Sequential(conv(c_in, out, 1, stride), nn.BatchNorm2d(out))
                           if stride != 1 or c_in != out else None)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.conv3 is not None:
            out = self.bn3(self.conv3(self.relu(out)))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


# The paper's block kind and blocks per stage for each depth.
RESNET = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]),
          101: ("bottleneck", [3, 4, 23, 3]), 152: ("bottleneck", [3, 8, 36, 3])}


@family("resnet")
class ResNet(nn.Module):
    """conv1 7x7/2 -> bn1 -> ReLU -> max pool 3/2 (the small stem: conv1 3x3/1, no pool) ->
    layer1..layer4 -> global average pool -> fc."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        kind, blocks = RESNET.get(m["depth"], ("basic", [2, 2, 2, 2]))
        kind, blocks = m.get("block") or kind, m.get("blocks") or blocks
        c_in = scaled(64, m["width"])
        imagenet = m["stem"] == "imagenet"
        self.conv1 = nn.Conv2d(c, c_in, 7, 2, 3, bias=False) if imagenet else nn.Conv2d(c, c_in, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else None
        for stage, count in enumerate(blocks):
            width, layer = scaled(64 << stage, m["width"]), []
            for i in range(count):
                layer.append(Block(kind, c_in, width, 2 if stage > 0 and i == 0 else 1))
                c_in = width * (4 if kind == "bottleneck" else 1)
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x) if self.maxpool is not None else x
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))
