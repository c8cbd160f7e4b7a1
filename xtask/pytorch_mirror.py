"""PyTorch's twin of a zoo image config, timed the way `zoo bench` times zoo.

    python3 xtask/pytorch_mirror.py RESOLVED.toml [--steps 50] [--min-seconds 1] [--threads 2] [--device cpu|cuda]

RESOLVED.toml is a config as `zoo check CONFIG --print-config` writes it (every default filled
in). The script builds the same network (layers, widths, pooling, normalization, dropout,
auxiliary heads, recurrent cells), the same loss and the same optimizer with the same settings,
and prints one JSON line: training images/s over `steps` steps after 5 untimed ones, and
inference images/s at the config's evaluation batch under `torch.no_grad()`, over
steps / 4 batches (rounded up) after an untimed one; each clock then runs on through the same
batches until it has run `min_seconds`, as zoo bench does. On cuda the loss is read back every step and the
predictions every batch, as zoo reads them, so both timings end on a finished GPU. Inputs are
random (throughput does not depend on pixel values), up to 16 distinct batches per clock;
zoo's are the dataset's. `cargo xtask bench --against-pytorch` runs it beside
`zoo bench`, config by config. Exit status 3 when torch is not installed.
"""
import argparse
import json
import os
import sys
import time
import tomllib

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed (pip install torch)", file=sys.stderr)
    sys.exit(3)


def scaled(channels, width):
    """zoo's width scaling: rounded half away from zero, at least 1."""
    return max(1, int(channels * width + 0.5))


DATASETS = {"fashion-mnist": (1, 28, 28, 10), "mnist": (1, 28, 28, 10), "kmnist": (1, 28, 28, 10),
            "cifar10": (3, 32, 32, 10), "cifar100": (3, 32, 32, 100), "imagenet": (3, 224, 224, 1000)}


def input_shape(data):
    """(channels, height, width, classes) of the config's input, as zoo's `image_input`."""
    c, h, w, classes = DATASETS[data["dataset"]]
    if data.get("resize"):
        h = w = data["resize"]
    folder = os.path.join(data.get("dir") or "", "train")
    if data["dataset"] in ("image-folder", "imagenet") and os.path.isdir(folder):
        # zoo's classes for a folder are its train/ subfolders.
        classes = sum(entry.is_dir() for entry in os.scandir(folder))
    elif data.get("classes"):
        classes = len(data["classes"])
    elif data.get("one_vs_rest") is not None:
        classes = 2
    return c, h, w, classes


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "leaky-relu": lambda: nn.LeakyReLU(0.01), "elu": nn.ELU}


def linear_model(m, shape):
    c, h, w, classes = shape
    out = 1 if m["kind"] == "logistic" else classes
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, out))


def mlp(m, shape):
    c, h, w, classes = shape
    layers, d = [nn.Flatten()], c * h * w
    for width in m["hidden"]:
        layers.append(nn.Linear(d, width))
        if m["batch_norm"]:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[m["activation"]]())
        if m["dropout"] > 0:
            layers.append(nn.Dropout(m["dropout"]))
        d = width
    return nn.Sequential(*layers, nn.Linear(d, classes))


def lenet5(m, shape):
    c, h, w, classes = shape
    padding = m.get("conv1_padding")
    if padding is None:
        padding = max(0, 32 - min(h, w)) // 2
    act, pool = ACTIVATIONS[m["activation"]], nn.MaxPool2d if m["pooling"] == "max" else nn.AvgPool2d
    side = lambda s: ((s + 2 * padding - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=padding), act(), pool(2, 2), nn.Conv2d(6, 16, 5), act(), pool(2, 2),
        nn.Flatten(), nn.Linear(16 * side(h) * side(w), 120), act(), nn.Linear(120, 84), act(),
        nn.Linear(84, classes))


class Recurrent(nn.Module):
    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[m["cell"]]
        self.rnn = cell(c * w, m["hidden"], num_layers=m["layers"], batch_first=True,
                        bidirectional=m["bidirectional"], dropout=m["dropout"] if m["layers"] > 1 else 0.0)
        self.readout, self.hidden = m["readout"], m["hidden"]
        self.head = nn.Linear(m["hidden"] * (2 if m["bidirectional"] else 1), classes)

    def forward(self, x):
        b, c, h, w = x.shape
        out, _ = self.rnn(x.permute(0, 2, 1, 3).reshape(b, h, c * w))
        if self.readout == "mean":
            features = out.mean(1)
        elif self.readout == "last" and self.rnn.bidirectional:
            features = torch.cat([out[:, -1, :self.hidden], out[:, 0, self.hidden:]], 1)
        else:
            features = out[:, -1]
        return self.head(features)


ALEXNET_ROWS = [dict(channels=96, kernel=11, stride=4, padding=0, pool=True, lrn=True),
                dict(channels=256, kernel=5, stride=1, padding=2, pool=True, lrn=True),
                dict(channels=384, kernel=3, stride=1, padding=1, pool=False, lrn=False),
                dict(channels=384, kernel=3, stride=1, padding=1, pool=False, lrn=False),
                dict(channels=256, kernel=3, stride=1, padding=1, pool=True, lrn=False)]
ZFNET_ROWS = [dict(channels=96, kernel=7, stride=2, padding=1, pool=True, lrn=True),
              dict(channels=256, kernel=5, stride=2, padding=0, pool=True, lrn=True),
              dict(channels=512, kernel=3, stride=1, padding=1, pool=False, lrn=False),
              dict(channels=1024, kernel=3, stride=1, padding=1, pool=False, lrn=False),
              dict(channels=512, kernel=3, stride=1, padding=1, pool=True, lrn=False)]


def classifier(d_in, hidden, classes, dropout, before):
    """Hidden linear + ReLU layers with dropout before each (AlexNet) or after (VGG)."""
    layers = []
    for width in hidden:
        layers += ([nn.Dropout(dropout)] if before else []) + [nn.Linear(d_in, width), nn.ReLU()]
        layers += [] if before else [nn.Dropout(dropout)]
        d_in = width
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(d_in, classes))


def with_head(features, m, shape, hidden, dropout, before):
    """features, [adaptive average pool], the classifier sized from a dry run."""
    c, h, w, classes = shape
    pool = nn.AdaptiveAvgPool2d(tuple(m["avgpool"])) if m.get("avgpool") else nn.Identity()
    with torch.no_grad():
        d_in = pool(features(torch.zeros(1, c, h, w))).numel()
    return nn.Sequential(features, pool, classifier(d_in, hidden, classes, dropout, before))


def alexnet(m, shape):
    rows = m.get("features") or (ZFNET_ROWS if m["kind"] == "zfnet" else ALEXNET_ROWS)
    ceil = m.get("ceil_mode")
    ceil = (m["kind"] == "zfnet") if ceil is None else ceil
    layers, c_in = [], shape[0]
    for r in rows:
        c = scaled(r["channels"], m["width"])
        layers += [nn.Conv2d(c_in, c, r["kernel"], r.get("stride", 1), r.get("padding", 0)), nn.ReLU()]
        if r.get("pool"):
            layers.append(nn.MaxPool2d(m["pool_kernel"], m["pool_stride"], ceil_mode=ceil))
        if r.get("lrn"):
            layers.append(nn.LocalResponseNorm(m["lrn_size"], m["lrn_alpha"], m["lrn_beta"], m["lrn_k"]))
        c_in = c
    hidden = [scaled(x, m["width"]) for x in m["classifier"]]
    return with_head(nn.Sequential(*layers), m, shape, hidden, m["dropout"], before=True)


VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
       13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
       16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
       19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
            512, 512, 512, 512, "M"]}


def vgg(m, shape):
    layers, c_in = [], shape[0]
    for item in m.get("layers") or VGG[m["depth"]]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=m["ceil_mode"]))
            continue
        c = scaled(item, m["width"])
        layers += [nn.Conv2d(c_in, c, 3, padding=1)] + ([nn.BatchNorm2d(c)] if m["batch_norm"] else [])
        layers.append(nn.ReLU())
        c_in = c
    hidden = [scaled(x, m["width"]) for x in m["classifier"]]
    return with_head(nn.Sequential(*layers), m, shape, hidden, m["dropout"], before=False)


def conv_unit(c_in, c_out, kernel, stride=1, padding=0, bn_eps=None):
    """conv -> [batch norm] -> ReLU; the conv has a bias only without batch norm."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bn_eps is None)]
    layers += [nn.BatchNorm2d(c_out, eps=bn_eps)] if bn_eps is not None else []
    return nn.Sequential(*layers, nn.ReLU())


GOOGLENET = [[("3a", [64, 96, 128, 16, 32, 32]), ("3b", [128, 128, 192, 32, 96, 64])],
             [("4a", [192, 96, 208, 16, 48, 64]), ("4b", [160, 112, 224, 24, 64, 64]),
              ("4c", [128, 128, 256, 24, 64, 64]), ("4d", [112, 144, 288, 32, 64, 64]),
              ("4e", [256, 160, 320, 32, 128, 128])],
             [("5a", [256, 160, 320, 32, 128, 128]), ("5b", [384, 192, 384, 48, 128, 128])]]


# The auxiliary heads read the maps of 4a and 4d: (stage, module) with the stage's pool at 0.
AUX_AFTER = [(1, 1), (1, 4)]


class Inception(nn.Module):
    def __init__(self, c_in, row, k3, bn):
        super().__init__()
        c1, r3, c3, r5, c5, pp = row
        self.branches = nn.ModuleList([
            conv_unit(c_in, c1, 1, bn_eps=bn),
            nn.Sequential(conv_unit(c_in, r3, 1, bn_eps=bn), conv_unit(r3, c3, 3, padding=1, bn_eps=bn)),
            nn.Sequential(conv_unit(c_in, r5, 1, bn_eps=bn), conv_unit(r5, c5, k3, padding=k3 // 2, bn_eps=bn)),
            nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_unit(c_in, pp, 1, bn_eps=bn))])

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class GoogLeNet(nn.Module):
    """zoo's GoogLeNet: its stem, the paper's rows, optional LRN, batch norm and auxiliary heads
    on 4a and 4d (whose losses count `aux_weight` in training)."""

    def __init__(self, m, shape):
        super().__init__()
        c, h, w, classes = shape
        s, bn = (lambda x: scaled(x, m["width"])), (m["batch_norm_eps"] if m["batch_norm"] else None)
        lrn = (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)) if m["lrn"] else nn.Identity
        pool = lambda k: nn.MaxPool2d(k, 2, ceil_mode=True)
        first = (conv_unit(c, s(64), 7, 2, 3, bn), pool(3), lrn()) if m["stem"] == "imagenet" else (
            conv_unit(c, s(64), 3, 1, 1, bn),)
        self.stem = nn.Sequential(*first, conv_unit(s(64), s(64), 1, bn_eps=bn),
                                  conv_unit(s(64), s(192), 3, 1, 1, bn), pool(3), lrn())
        self.stages, c_in = nn.ModuleList(), s(192)
        for i, stage in enumerate(GOOGLENET):
            modules = [pool(m["stage_pool_kernels"][i - 1])] if i > 0 else []
            for name, row in stage:
                row = [s(x) for x in row]
                modules.append(Inception(c_in, row, m["branch3_kernel"], bn))
                c_in = row[0] + row[2] + row[4] + row[5]
            self.stages.append(nn.Sequential(*modules))
        self.aux = nn.ModuleList()
        if m["aux_classifiers"]:
            with torch.no_grad():  # the maps of 4a and 4d, from a dry run
                x, maps = self.stem(torch.zeros(1, c, h, w)), []
                for i, stage in enumerate(self.stages):
                    for j, module in enumerate(stage):
                        x = module(x)
                        if (i, j) in AUX_AFTER:
                            maps.append(x)
            for x in maps:
                pooled = nn.AvgPool2d(5, 3)(x)
                self.aux.append(nn.Sequential(
                    nn.AvgPool2d(5, 3), conv_unit(x.shape[1], s(128), 1, bn_eps=bn), nn.Flatten(),
                    nn.Linear(s(128) * pooled.shape[2] * pooled.shape[3], s(1024)), nn.ReLU(),
                    nn.Dropout(m["aux_dropout"]), nn.Linear(s(1024), classes)))
        self.aux_weight = m["aux_weight"]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(m["dropout"]),
                                  nn.Linear(c_in, classes))

    def forward(self, x):
        x, aux = self.stem(x), []
        for i, stage in enumerate(self.stages):
            for j, module in enumerate(stage):
                x = module(x)
                if self.training and self.aux and (i, j) in AUX_AFTER:
                    aux.append(self.aux[len(aux)](x))
        logits = self.head(x)
        return (logits, aux) if self.training and self.aux else logits


class Block(nn.Module):
    """A basic block or a bottleneck (stride on the 3x3), with torchvision's projection."""

    def __init__(self, kind, c_in, c, stride):
        super().__init__()
        out = c * (4 if kind == "bottleneck" else 1)
        convs = ([(c_in, c, 3, stride), (c, c, 3, 1)] if kind == "basic" else
                 [(c_in, c, 1, 1), (c, c, 3, stride), (c, out, 1, 1)])
        layers = []
        for i, (a, b, k, st) in enumerate(convs):
            layers += [nn.Conv2d(a, b, k, st, k // 2, bias=False), nn.BatchNorm2d(b)]
            layers += [nn.ReLU()] if i + 1 < len(convs) else []
        self.body = nn.Sequential(*layers)
        self.short = (nn.Sequential(nn.Conv2d(c_in, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                      if stride != 1 or c_in != out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


RESNET = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]),
          101: ("bottleneck", [3, 4, 23, 3]), 152: ("bottleneck", [3, 8, 36, 3])}


def resnet(m, shape):
    c, h, w, classes = shape
    kind, blocks = RESNET.get(m["depth"], ("basic", [2, 2, 2, 2]))
    kind, blocks = m.get("block") or kind, m.get("blocks") or blocks
    stem_c = scaled(64, m["width"])
    stem = ([nn.Conv2d(c, stem_c, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_c), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
            if m["stem"] == "imagenet" else
            [nn.Conv2d(c, stem_c, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_c), nn.ReLU()])
    layers, c_in = stem, stem_c
    for stage, count in enumerate(blocks):
        width = scaled(64 << stage, m["width"])
        for i in range(count):
            layers.append(Block(kind, c_in, width, 2 if stage > 0 and i == 0 else 1))
            c_in = width * (4 if kind == "bottleneck" else 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


FAMILIES = {"softmax": linear_model, "logistic": linear_model, "mlp": mlp, "lenet5": lenet5,
            "recurrent": Recurrent, "lstm": Recurrent, "alexnet": alexnet, "zfnet": alexnet, "vgg": vgg,
            "googlenet": GoogLeNet, "resnet": resnet}


def loss_fn(m):
    """zoo's training loss for the family: cross-entropy, the multiclass hinge, or logistic BCE."""
    if m["kind"] == "logistic":
        return lambda out, y: F.binary_cross_entropy_with_logits(out[:, 0], y.float())
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


def optimizer(t, params):
    """zoo's optimizer settings, PyTorch's defaults where zoo's config leaves them out."""
    lr, decay = t["lr"], t.get("weight_decay") or 0.0
    kind = t["optimizer"]
    if kind in ("sgd", "momentum", "nesterov"):
        momentum = 0.0 if kind == "sgd" else t.get("momentum", 0.9)
        return torch.optim.SGD(params, lr, momentum=momentum, nesterov=kind == "nesterov", weight_decay=decay)
    betas, eps = tuple(t.get("betas", (0.9, 0.999))), t.get("eps") or 1e-8
    if kind == "adam":
        return torch.optim.Adam(params, lr, betas=betas, eps=eps, weight_decay=decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr, betas=betas, eps=eps, weight_decay=t.get("weight_decay") or 1e-2)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr, alpha=t.get("alpha", 0.99), eps=eps,
                                   momentum=t.get("momentum") or 0.0, weight_decay=decay)
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr, eps=t.get("eps") or 1e-10, weight_decay=decay)
    raise SystemExit(f"no PyTorch optimizer for {kind}")


# At most this many distinct random batches per clock (beyond the caches, more change nothing).
DISTINCT = 16


def measure(config, steps, device, min_seconds, warmup=5):
    m, data, train = config["model"], config["data"], config["train"]
    if m["kind"] not in FAMILIES:
        raise SystemExit(f"{m['kind']}: no PyTorch twin (zoo bench times its prediction, not training)")
    shape = input_shape(data)
    c, h, w, classes = shape
    torch.manual_seed(train.get("seed", 0))
    model = FAMILIES[m["kind"]](m, shape).to(device)
    model.train()
    opt, loss = optimizer(train, model.parameters()), loss_fn(m)
    batch = data["batch_size"]

    def batches(count, size):
        # Distinct batches, as zoo's loader gives it (a single one would stay in the caches).
        return [torch.randn(size, c, h, w, device=device) for _ in range(min(count, DISTINCT))]

    def clock_done(done, asked, started):
        # As zoo bench: the asked steps, then on through the same batches until min_seconds.
        return done >= asked and time.perf_counter() - started >= min_seconds

    xs, y = batches(warmup + steps, batch), torch.randint(0, classes, (batch,), device=device)
    i = 0
    while True:
        if i == warmup:
            started = time.perf_counter()
        if i >= warmup and clock_done(i - warmup, steps, started):
            break
        opt.zero_grad(set_to_none=True)
        out = model(xs[i % len(xs)])
        value = loss(out, y)
        value.backward()
        opt.step()
        value.item()  # zoo reads the loss back every step too
        i += 1
    train_steps = i - warmup
    train_rate = train_steps * batch / (time.perf_counter() - started)

    model.eval()
    eval_batch = data["eval_batch_size"]
    asked = -(-steps // 4)
    xes = batches(asked + 1, eval_batch)
    with torch.no_grad():
        model(xes[0]).argmax(1).cpu()
        started, done = time.perf_counter(), 0
        while not clock_done(done, asked, started):
            model(xes[done % len(xes)]).argmax(1).cpu()  # zoo reads each batch's predictions back too
            done += 1
    inference_rate = done * eval_batch / (time.perf_counter() - started)
    return dict(params=sum(p.numel() for p in model.parameters()),
                train_samples_per_second=train_rate, batch_size=batch,
                inference_samples_per_second=inference_rate, inference_batch_size=eval_batch,
                torch=torch.__version__, threads=torch.get_num_threads(),
                device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU")
    with open(args.config, "rb") as f:
        config = tomllib.load(f)
    print(json.dumps(measure(config, args.steps, device, args.min_seconds)))


if __name__ == "__main__":
    main()
