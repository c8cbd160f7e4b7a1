"""PyTorch parity fixtures for zoo, and the checks that need PyTorch itself.

    pip install torch torchvision safetensors numpy          # not needed by CI
    python3 zoo/tests/pytorch/make_fixtures.py               # writes the fixtures below
    python3 zoo/tests/pytorch/make_fixtures.py --zoo target/debug/zoo --round-trip
    python3 zoo/tests/pytorch/make_fixtures.py --zoo target/debug/zoo --full-size

Default: for every case in CASES, writes `zoo/tests/pytorch/<case>/`:
  config.toml           the zoo config of the same network (`zoo import` reads it)
  weights.pth           `torch.save(model.state_dict())` (zip format; `legacy` cases use the
                        pre-1.6 format, `safetensors` cases write weights.safetensors instead)
  expected.safetensors  `input` [N, C, H, W] and PyTorch's eval-mode `logits` [N, classes]
  step.safetensors      (mlp, lenet5, resnet-basic) an `input` batch, its `targets`, and every tensor after one
                        training step of SGD with momentum and weight decay, and of Adam
Weights are random (seeded), batch-norm running statistics too (never 0 and 1), and every
network is narrow, so that all fixtures stay under a few MB. zoo/tests/pytorch_parity.rs
imports each and compares its logits and the stepped weights with PyTorch's.

--round-trip: for every case, `zoo import` then `zoo export`, then PyTorch's
`load_state_dict(strict=True)` of the exported file: every tensor must equal the original,
and `zoo predict --json` on the input must give PyTorch's logits.

--full-size: full-width torchvision models with random weights (resnet18, resnet50,
vgg11_bn, alexnet, googlenet) imported into configs/torchvision/*.toml; prints the largest
difference between zoo's logits and PyTorch's on one 224x224 input. Too large to commit.
"""
import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torchvision.models import resnet as tv_resnet

tv_googlenet = importlib.import_module("torchvision.models.googlenet")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def scaled(channels, width):
    """zoo's width scaling: rounded half away from zero, at least 1."""
    return max(1, int(math.floor(channels * width + 0.5)))


# ---------------------------------------------------------------------------------------------
# The PyTorch networks. Families torchvision ships use its module names (here at small widths,
# built from torchvision's own blocks where it has them); the others use zoo's module paths.


class Softmax(nn.Module):
    def __init__(self, d_in, classes):
        super().__init__()
        self.fc = nn.Linear(d_in, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class MlpBlock(nn.Module):
    def __init__(self, d_in, d_out, batch_norm):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.BatchNorm1d(d_out) if batch_norm else None

    def forward(self, x):
        x = self.linear(x)
        return torch.relu(self.norm(x) if self.norm is not None else x)


class Mlp(nn.Module):
    def __init__(self, d_in, hidden, classes, batch_norm):
        super().__init__()
        widths = [d_in] + hidden
        self.hidden = nn.ModuleList(MlpBlock(a, b, batch_norm) for a, b in zip(widths, hidden))
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)


class LeNet5(nn.Module):
    def __init__(self, act, pool):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.act, self.pool = act, pool

    def forward(self, x):
        x = self.pool(self.act(self.conv1(x)), 2)
        x = self.pool(self.act(self.conv2(x)), 2).flatten(1)
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class Rows(nn.Module):
    """The README's recurrent classifier: a 28x28 image as 28 steps of 28 pixels."""

    def __init__(self, cell, hidden, layers, bidirectional):
        super().__init__()
        self.rnn = cell(28, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), 10)

    def forward(self, x):
        out, _ = self.rnn(x.view(-1, 28, 28))
        return self.head(out[:, -1])


# AlexNet rows: (channels, kernel, stride, padding, max pool 3/2 after, LRN after).
TORCHVISION_ALEXNET = [(64, 11, 4, 2, True, False), (192, 5, 1, 2, True, False),
                       (384, 3, 1, 1, False, False), (256, 3, 1, 1, False, False),
                       (256, 3, 1, 1, True, False)]
# configs/fashion-mnist/alexnet.toml's rows for 28x28x1.
NOTES_ALEXNET_28 = [(96, 5, 1, 2, True, True), (256, 3, 1, 1, True, True), (384, 3, 1, 1, False, False),
                    (384, 3, 1, 1, False, False), (256, 3, 1, 1, True, False)]


class AlexNet(nn.Module):
    """AlexNet in torchvision's layout (features / avgpool / classifier, `features.N` counting
    every module) at `width`: conv, ReLU, [max pool 3/2], [LRN] per row, an optional adaptive
    average pool, and dropout before each hidden layer. torchvision's is TORCHVISION_ALEXNET with
    a 6x6 pool; the notes' (zoo's documented layout for it) has LRN."""

    def __init__(self, rows, width, classes, input_shape, avgpool=None):
        super().__init__()
        layers, c_in = [], input_shape[0]
        for channels, kernel, stride, padding, pool, lrn in rows:
            c = scaled(channels, width)
            layers += [nn.Conv2d(c_in, c, kernel, stride, padding), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            if lrn:
                # alpha 1 and k 1, not the paper's 1e-4 and 2, so that the normalization
                # changes the output enough for a wrong formula to show.
                layers.append(nn.LocalResponseNorm(5, alpha=1.0, beta=0.75, k=1.0))
            c_in = c
        h = scaled(4096, width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(avgpool) if avgpool else nn.Identity()
        with torch.no_grad():
            flat = self.avgpool(self.features(torch.zeros(1, *input_shape))).numel()
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(flat, h), nn.ReLU(),
            nn.Dropout(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class Vgg(nn.Module):
    """torchvision's VGG (features / avgpool / classifier) at `width`."""

    def __init__(self, items, batch_norm, width, classes):
        super().__init__()
        layers, c_in = [], 3
        for item in items:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            c = scaled(item, width)
            layers.append(nn.Conv2d(c_in, c, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU())
            c_in = c
        h = scaled(4096, width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 49, h), nn.ReLU(), nn.Dropout(),
            nn.Linear(h, h), nn.ReLU(), nn.Dropout(), nn.Linear(h, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


GOOGLENET_ROWS = [
    ("3a", [64, 96, 128, 16, 32, 32]), ("3b", [128, 128, 192, 32, 96, 64]),
    ("4a", [192, 96, 208, 16, 48, 64]), ("4b", [160, 112, 224, 24, 64, 64]),
    ("4c", [128, 128, 256, 24, 64, 64]), ("4d", [112, 144, 288, 32, 64, 64]),
    ("4e", [256, 160, 320, 32, 128, 128]), ("5a", [256, 160, 320, 32, 128, 128]),
    ("5b", [384, 192, 384, 48, 128, 128]),
]


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (no auxiliary heads) at `width`, from its own blocks, with
    the input re-normalization of its pretrained weights (`transform_input`)."""

    def __init__(self, width, classes):
        super().__init__()
        self.transform = tv_googlenet.GoogLeNet(aux_logits=False, transform_input=True,
                                                init_weights=False)._transform_input
        conv = tv_googlenet.BasicConv2d
        c64, c192 = scaled(64, width), scaled(192, width)
        self.conv1 = conv(3, c64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(c64, c64, kernel_size=1)
        self.conv3 = conv(c64, c192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        c_in = c192
        for name, row in GOOGLENET_ROWS:
            row = [scaled(c, width) for c in row]
            setattr(self, "inception" + name, tv_googlenet.Inception(c_in, *row))
            c_in = row[0] + row[2] + row[4] + row[5]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.transform(x)
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name, _ in GOOGLENET_ROWS:
            if name == "4a":
                x = self.maxpool3(x)
            if name == "5a":
                x = self.maxpool4(x)
            x = getattr(self, "inception" + name)(x)
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


class ResNet(nn.Module):
    """torchvision's ResNet at `width`, from its own BasicBlock and Bottleneck."""

    def __init__(self, block, blocks, width, classes):
        super().__init__()
        self.inplanes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for stage, count in enumerate(blocks):
            planes = scaled(64 << stage, width)
            layers = []
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                downsample = None
                if stride != 1 or self.inplanes != planes * block.expansion:
                    downsample = nn.Sequential(
                        nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion))
                layers.append(block(self.inplanes, planes, stride, downsample))
                self.inplanes = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


# ---------------------------------------------------------------------------------------------
# The cases: the PyTorch network, zoo's config of it, the input's shape and the file format.

FASHION = '[data]\ndataset = "fashion-mnist"\nnormalize = "none"\n'
SMALL_IMAGENET = ('[data]\ndataset = "imagenet"\nresize = {side}\n'
                  'classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n')

CASES = {
    "softmax": dict(
        make=lambda: Softmax(784, 10),
        config='[model]\nkind = "softmax"\n\n' + FASHION,
        input=[4, 1, 28, 28]),
    "mlp": dict(
        make=lambda: Mlp(784, [32, 16], 10, batch_norm=True),
        config='[model]\nkind = "mlp"\nhidden = [32, 16]\nbatch_norm = true\n\n' + FASHION,
        input=[4, 1, 28, 28]),
    "lenet5": dict(
        make=lambda: LeNet5(torch.relu, F.max_pool2d),
        config='[model]\nkind = "lenet5"\n\n' + FASHION,
        input=[4, 1, 28, 28], format="legacy"),
    "lenet5-classic": dict(
        make=lambda: LeNet5(torch.tanh, F.avg_pool2d),
        config='[model]\nkind = "lenet5"\nactivation = "tanh"\npooling = "avg"\n\n' + FASHION,
        input=[4, 1, 28, 28], format="safetensors"),
    "alexnet": dict(
        make=lambda: AlexNet(TORCHVISION_ALEXNET, 1 / 32, 10, (3, 95, 95), avgpool=(6, 6)),
        config=('[model]\nkind = "alexnet"\nwidth = 0.03125\navgpool = [6, 6]\n'
                'features = [\n'
                '  { channels = 64, kernel = 11, stride = 4, padding = 2, pool = true },\n'
                '  { channels = 192, kernel = 5, padding = 2, pool = true },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true },\n]\n\n'
                + SMALL_IMAGENET.format(side=95)),
        input=[2, 3, 95, 95]),
    "vgg11": dict(
        make=lambda: Vgg(VGG11, False, 1 / 32, 10),
        config=('[model]\nkind = "vgg"\ndepth = 11\nwidth = 0.03125\navgpool = [7, 7]\n\n'
                + SMALL_IMAGENET.format(side=64)),
        input=[2, 3, 64, 64]),
    "vgg11-bn": dict(
        make=lambda: Vgg(VGG11, True, 1 / 32, 10),
        config=('[model]\nkind = "vgg"\ndepth = 11\nbatch_norm = true\nwidth = 0.03125\n'
                'avgpool = [7, 7]\n\n' + SMALL_IMAGENET.format(side=64)),
        input=[2, 3, 64, 64], format="legacy"),
    "googlenet": dict(
        make=lambda: GoogLeNet(1 / 8, 10),
        config=('[model]\nkind = "googlenet"\nwidth = 0.125\nlrn = false\nbatch_norm = true\n'
                'batch_norm_eps = 0.001\nbranch3_kernel = 3\nstage_pool_kernels = [3, 2]\n'
                'dropout = 0.2\ntransform_input = true\n\n' + SMALL_IMAGENET.format(side=96)),
        input=[2, 3, 96, 96]),
    "resnet-basic": dict(
        make=lambda: ResNet(tv_resnet.BasicBlock, [2, 1, 1, 1], 1 / 8, 10),
        config=('[model]\nkind = "resnet"\nblock = "basic"\nblocks = [2, 1, 1, 1]\n'
                'width = 0.125\n\n' + SMALL_IMAGENET.format(side=64)),
        input=[2, 3, 64, 64]),
    "resnet-bottleneck": dict(
        make=lambda: ResNet(tv_resnet.Bottleneck, [1, 2, 1, 1], 1 / 8, 10),
        config=('[model]\nkind = "resnet"\nblock = "bottleneck"\nblocks = [1, 2, 1, 1]\n'
                'width = 0.125\n\n' + SMALL_IMAGENET.format(side=64)),
        input=[2, 3, 64, 64], format="safetensors"),
    "lstm": dict(
        make=lambda: Rows(nn.LSTM, 16, 1, False),
        config='[model]\nkind = "recurrent"\ncell = "lstm"\nhidden = 16\n\n' + FASHION,
        input=[3, 1, 28, 28]),
    "gru": dict(
        make=lambda: Rows(nn.GRU, 16, 1, False),
        config='[model]\nkind = "recurrent"\ncell = "gru"\nhidden = 16\n\n' + FASHION,
        input=[3, 1, 28, 28]),
    "bilstm-2": dict(
        make=lambda: Rows(nn.LSTM, 12, 2, True),
        config=('[model]\nkind = "recurrent"\ncell = "lstm"\nhidden = 12\nlayers = 2\n'
                'bidirectional = true\nreadout = "last-output"\n\n' + FASHION),
        input=[3, 1, 28, 28], format="legacy"),
    "alexnet-lrn": dict(
        make=lambda: AlexNet(NOTES_ALEXNET_28, 1 / 16, 10, (1, 28, 28)),
        config=('[model]\nkind = "alexnet"\nwidth = 0.0625\nlrn_alpha = 1.0\nlrn_k = 1.0\nfeatures = [\n'
                '  { channels = 96, kernel = 5, padding = 2, pool = true, lrn = true },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true, lrn = true },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true },\n]\n\n' + FASHION),
        input=[2, 1, 28, 28]),
}


def randomized(model, seed):
    """Random weights that keep the signal's scale (He), nonzero biases, batch-norm statistics
    far from 0 and 1; in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    module.bias.uniform_(-0.2, 0.2)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    return model.eval()


def write_fixtures():
    for i, (name, case) in enumerate(CASES.items()):
        torch.manual_seed(i)
        model = randomized(case["make"](), seed=100 + i)
        x = torch.randn(*case["input"])
        with torch.no_grad():
            logits = model(x)
        out = os.path.join(HERE, name)
        os.makedirs(out, exist_ok=True)
        for old in ("weights.pth", "weights.safetensors"):
            if os.path.exists(os.path.join(out, old)):
                os.remove(os.path.join(out, old))
        state = model.state_dict()
        fmt = case.get("format", "zip")
        if fmt == "safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, "weights.safetensors"))
        else:
            torch.save(state, os.path.join(out, "weights.pth"),
                       _use_new_zipfile_serialization=(fmt == "zip"))
        save_file({"input": x.contiguous(), "logits": logits.contiguous()},
                  os.path.join(out, "expected.safetensors"))
        with open(os.path.join(out, "config.toml"), "w") as f:
            f.write(f"# Written by make_fixtures.py: zoo's config of the PyTorch network in weights.*\n\n")
            f.write(case["config"])
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params} parameters, {size / 1024:.0f} KiB, max |logit| {logits.abs().max():.3f}")


# One training step from the fixture's weights on its input (cases below): SGD with momentum and
# weight decay, and Adam, as zoo/tests/pytorch_parity.rs configures zoo's optimizers.
STEP_CASES = ["mlp", "lenet5", "resnet-basic"]
OPTIMIZERS = {
    "momentum": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4),
    # Epsilon 1e-4, not 1e-8: a parameter whose gradient is 0 in exact arithmetic (a bias before
    # batch norm, a dead ReLU's weights) gets 0 in one implementation and 1e-9 of rounding in the
    # other, and Adam's first step moves it by lr * g / (|g| + eps): by 0 or a tenth of lr at
    # 1e-8. At 1e-4 that rounding moves it by at most 1e-5 lr, and every other step is unchanged.
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3, eps=1e-4, weight_decay=5e-4),
}


def write_step_fixtures():
    """`step.safetensors`: `targets` and, per optimizer, every tensor after one training step
    (batch statistics in the forward pass, running statistics updated). Burn updates a running
    variance with the batch's biased variance where PyTorch uses the unbiased one: the running
    variances written here are PyTorch's with that one difference, which the test names."""
    for name in STEP_CASES:
        case_dir = os.path.join(HERE, name)
        # A batch of its own, larger than the logits' (batch statistics of 2 or 4 examples
        # amplify rounding); 16 examples at 28x28, 4 at 64x64.
        shape = list(CASES[name]["input"])
        shape[0] = 16 if shape[2] <= 28 else 4
        torch.manual_seed(7)
        x = torch.randn(*shape)
        targets = torch.randint(0, 10, (x.shape[0],))
        out = {"input": x, "targets": targets}
        for optimizer, make in OPTIMIZERS.items():
            model = CASES[name]["make"]()
            state = (torch.load(weights_file(case_dir)) if weights_file(case_dir).endswith(".pth")
                     else load_file(weights_file(case_dir)))
            model.load_state_dict(state)
            model.train()
            batch_sizes = {}
            for module_name, module in model.named_modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.register_forward_hook(
                        lambda m, i, o, n=module_name: batch_sizes.__setitem__(n, i[0].numel() // i[0].shape[1]))
            opt = make(model.parameters())
            loss = F.cross_entropy(model(x), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for key, value in model.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    continue
                if key.endswith("running_var"):
                    module_name = key[: -len(".running_var")]
                    n, old = batch_sizes[module_name], state[key]
                    unbiased = (value - 0.9 * old) / 0.1
                    value = 0.9 * old + 0.1 * unbiased * (n - 1) / n
                out[f"{optimizer}.{key}"] = value.contiguous()
        save_file(out, os.path.join(case_dir, "step.safetensors"))
        print(f"{name}: one step of {', '.join(OPTIMIZERS)} written")


def zoo(binary, *args):
    run = subprocess.run([binary, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


def weights_file(case_dir):
    for name in ("weights.pth", "weights.safetensors"):
        if os.path.exists(os.path.join(case_dir, name)):
            return os.path.join(case_dir, name)
    sys.exit(f"no weights in {case_dir}: run without flags first")


def round_trip(binary):
    """import -> export -> load_state_dict(strict=True): equal tensors, PyTorch's logits."""
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, case) in enumerate(CASES.items()):
            case_dir = os.path.join(HERE, name)
            run_dir, exported = os.path.join(tmp, name), os.path.join(tmp, name + ".safetensors")
            zoo(binary, "import", os.path.join(case_dir, "config.toml"), weights_file(case_dir),
                "--out", run_dir)
            zoo(binary, "export", run_dir, exported)
            model = case["make"]()
            original = (torch.load(weights_file(case_dir)) if weights_file(case_dir).endswith(".pth")
                        else load_file(weights_file(case_dir)))
            model.load_state_dict(load_file(exported), strict=True)
            for key, value in model.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    continue
                if not torch.equal(value, original[key]):
                    sys.exit(f"{name}: {key} changed in the round trip")
            expected = load_file(os.path.join(case_dir, "expected.safetensors"))
            npy = os.path.join(tmp, name + ".npy")
            np.save(npy, expected["input"].numpy())
            out = json.loads(zoo(binary, "predict", run_dir, npy, "--json"))
            logits = torch.tensor([row["logits"] for row in out])
            diff = (logits - expected["logits"]).abs().max().item()
            worst = max(worst, diff)
            print(f"{name}: strict load_state_dict of the export OK, tensors equal; "
                  f"zoo predict vs PyTorch max |diff| {diff:.2e}")
    print(f"all {len(CASES)} cases round-trip; largest logit difference {worst:.2e}")


def full_size(binary):
    """torchvision's own full-width models, random weights, one 224x224 input."""
    import torchvision.models as tvm
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "input.npy")
        np.save(npy, x.numpy())
        # (torchvision constructor, its arguments, the config, zoo's extra flags)
        models = [("resnet18", {}, "resnet18", []), ("resnet50", {}, "resnet50", []),
                  ("vgg11_bn", {}, "vgg11_bn", []), ("alexnet", {}, "alexnet", []),
                  ("googlenet", dict(aux_logits=False, init_weights=True), "googlenet", []),
                  # The pretrained weights' form: auxiliary heads, input re-normalization.
                  ("googlenet", dict(aux_logits=True, transform_input=True, init_weights=True), "googlenet",
                   ["--set", "model.aux_classifiers=true", "--set", "model.transform_input=true"])]
        for i, (name, kwargs, config, flags) in enumerate(models):
            label = name + ("" if not flags else " (aux_logits, transform_input)")
            model = randomized(getattr(tvm, name)(**kwargs), seed=1)
            weights = os.path.join(tmp, f"{i}.pth")
            torch.save(model.state_dict(), weights)
            with torch.no_grad():
                expected = model(x)
            run_dir = os.path.join(tmp, str(i))
            zoo(binary, "import", os.path.join(ROOT, "configs", "torchvision", config + ".toml"),
                weights, "--out", run_dir, *flags)
            out = json.loads(zoo(binary, "predict", run_dir, npy, "--json"))
            logits = torch.tensor([row["logits"] for row in out])
            diff = (logits - expected).abs().max().item()
            print(f"| {label} | {sum(p.numel() for p in model.parameters()):,} | "
                  f"{expected.abs().max():.3f} | {diff:.2e} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", help="the zoo binary (for --round-trip and --full-size)")
    parser.add_argument("--round-trip", action="store_true")
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.round_trip or args.full_size:
        if not args.zoo:
            sys.exit("--round-trip and --full-size need --zoo PATH")
        if args.round_trip:
            round_trip(args.zoo)
        if args.full_size:
            full_size(args.zoo)
    else:
        write_fixtures()
        write_step_fixtures()


if __name__ == "__main__":
    main()
