"""PyTorch parity fixtures for zoo, and the checks that need PyTorch itself.

    pip install torch torchvision safetensors numpy          # not needed by CI
    cargo build -p zoo                                       # the cases' configs are resolved by zoo
    python3 zoo/tests/pytorch/make_fixtures.py               # writes the fixtures below
    python3 zoo/tests/pytorch/make_fixtures.py --round-trip
    python3 zoo/tests/pytorch/make_fixtures.py --full-size

Each case in CASES is a zoo config; its PyTorch network is the twin (xtask/twins.py, the one
the benchmark times too) of that config as `zoo check --print-config` resolves it (`--zoo`,
default target/debug/zoo). A new case: one more entry in CASES (config, batch, file format).

Default: for every case, writes `zoo/tests/pytorch/<case>/`:
  config.toml           the case's config (`zoo import` reads it)
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

--full-size: torchvision's own full-width models with random weights (resnet18, resnet50,
vgg11_bn, alexnet, googlenet) imported into configs/torchvision/*.toml; prints the largest
difference between zoo's logits and PyTorch's on one 224x224 input. Too large to commit.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "xtask"))
import twins  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The cases: zoo's config of the network (written to config.toml), the batch of the logits'
# input, and the weights' file format.

FASHION = '[data]\ndataset = "fashion-mnist"\nnormalize = "none"\n'
SMALL_IMAGENET = ('[data]\ndataset = "imagenet"\nresize = {side}\n'
                  'classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n')

CASES = {
    "softmax": dict(
        config='[model]\nkind = "softmax"\n\n' + FASHION,
        batch=4),
    "mlp": dict(
        config='[model]\nkind = "mlp"\nhidden = [32, 16]\nbatch_norm = true\n\n' + FASHION,
        batch=4),
    "lenet5": dict(
        config='[model]\nkind = "lenet5"\n\n' + FASHION,
        batch=4, format="legacy"),
    "lenet5-classic": dict(
        config='[model]\nkind = "lenet5"\nactivation = "tanh"\npooling = "avg"\n\n' + FASHION,
        batch=4, format="safetensors"),
    "alexnet": dict(
        config=('[model]\nkind = "alexnet"\nwidth = 0.03125\navgpool = [6, 6]\n'
                'features = [\n'
                '  { channels = 64, kernel = 11, stride = 4, padding = 2, pool = true },\n'
                '  { channels = 192, kernel = 5, padding = 2, pool = true },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true },\n]\n\n'
                + SMALL_IMAGENET.format(side=95)),
        batch=2),
    "vgg11": dict(
        config=('[model]\nkind = "vgg"\ndepth = 11\nwidth = 0.03125\navgpool = [7, 7]\n\n'
                + SMALL_IMAGENET.format(side=64)),
        batch=2),
    "vgg11-bn": dict(
        config=('[model]\nkind = "vgg"\ndepth = 11\nbatch_norm = true\nwidth = 0.03125\n'
                'avgpool = [7, 7]\n\n' + SMALL_IMAGENET.format(side=64)),
        batch=2, format="legacy"),
    "googlenet": dict(
        config=('[model]\nkind = "googlenet"\nwidth = 0.125\nlrn = false\nbatch_norm = true\n'
                'batch_norm_eps = 0.001\nbranch3_kernel = 3\nstage_pool_kernels = [3, 2]\n'
                'dropout = 0.2\ntransform_input = true\n\n' + SMALL_IMAGENET.format(side=96)),
        batch=2),
    "resnet-basic": dict(
        config=('[model]\nkind = "resnet"\nblock = "basic"\nblocks = [2, 1, 1, 1]\n'
                'width = 0.125\n\n' + SMALL_IMAGENET.format(side=64)),
        batch=2),
    "resnet-bottleneck": dict(
        config=('[model]\nkind = "resnet"\nblock = "bottleneck"\nblocks = [1, 2, 1, 1]\n'
                'width = 0.125\n\n' + SMALL_IMAGENET.format(side=64)),
        batch=2, format="safetensors"),
    "lstm": dict(
        config='[model]\nkind = "recurrent"\ncell = "lstm"\nhidden = 16\n\n' + FASHION,
        batch=3),
    "gru": dict(
        config='[model]\nkind = "recurrent"\ncell = "gru"\nhidden = 16\n\n' + FASHION,
        batch=3),
    "bilstm-2": dict(
        config=('[model]\nkind = "recurrent"\ncell = "lstm"\nhidden = 12\nlayers = 2\n'
                'bidirectional = true\nreadout = "last-output"\n\n' + FASHION),
        batch=3, format="legacy"),
    "alexnet-lrn": dict(
        config=('[model]\nkind = "alexnet"\nwidth = 0.0625\nlrn_alpha = 1.0\nlrn_k = 1.0\nfeatures = [\n'
                '  { channels = 96, kernel = 5, padding = 2, pool = true, lrn = true },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true, lrn = true },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 384, kernel = 3, padding = 1 },\n'
                '  { channels = 256, kernel = 3, padding = 1, pool = true },\n]\n\n' + FASHION),
        batch=2),
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


def zoo(binary, *args):
    run = subprocess.run([binary, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


def resolved(binary, name):
    """The case's config.toml with every default filled in, as zoo reads it."""
    return tomllib.loads(zoo(binary, "check", os.path.join(HERE, name, "config.toml"), "--print-config"))


def twin(config):
    """The case's PyTorch network and its input's (channels, height, width, classes)."""
    shape = twins.input_shape(config["data"])
    return twins.build(config["model"], shape), shape


def write_fixtures(binary):
    for i, (name, case) in enumerate(CASES.items()):
        out = os.path.join(HERE, name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.toml"), "w") as f:
            f.write(f"# Written by make_fixtures.py: zoo's config of the PyTorch network in weights.*\n\n")
            f.write(case["config"])
        config = resolved(binary, name)
        # Recurrent cells keep PyTorch's initialization, drawn from this seed.
        torch.manual_seed(i)
        model, (c, h, w, _) = twin(config)
        model = randomized(model, seed=100 + i)
        x = torch.randn(case["batch"], c, h, w)
        with torch.no_grad():
            logits = model(x)
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


def write_step_fixtures(binary):
    """`step.safetensors`: `targets` and, per optimizer, every tensor after one training step
    (batch statistics in the forward pass, running statistics updated). Burn updates a running
    variance with the batch's biased variance where PyTorch uses the unbiased one: the running
    variances written here are PyTorch's with that one difference, which the test names."""
    for name in STEP_CASES:
        case_dir = os.path.join(HERE, name)
        config = resolved(binary, name)
        c, h, w, classes = twins.input_shape(config["data"])
        # A batch of its own, larger than the logits' (batch statistics of 2 or 4 examples
        # amplify rounding); 16 examples at 28x28, 4 at 64x64.
        torch.manual_seed(7)
        x = torch.randn(16 if h <= 28 else 4, c, h, w)
        targets = torch.randint(0, classes, (x.shape[0],))
        out = {"input": x, "targets": targets}
        for optimizer, make in OPTIMIZERS.items():
            model, _ = twin(config)
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
            loss = twins.loss(config["model"])(model(x), targets)
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


def weights_file(case_dir):
    for name in ("weights.pth", "weights.safetensors"):
        if os.path.exists(os.path.join(case_dir, name)):
            return os.path.join(case_dir, name)
    sys.exit(f"no weights in {case_dir}: run without flags first")


def round_trip(binary):
    """import -> export -> load_state_dict(strict=True): equal tensors, PyTorch's logits."""
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            case_dir = os.path.join(HERE, name)
            run_dir, exported = os.path.join(tmp, name), os.path.join(tmp, name + ".safetensors")
            zoo(binary, "import", os.path.join(case_dir, "config.toml"), weights_file(case_dir),
                "--out", run_dir)
            zoo(binary, "export", run_dir, exported)
            model, _ = twin(resolved(binary, name))
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
    parser.add_argument("--zoo", default=os.path.join(ROOT, "target", "debug", "zoo"),
                        help="the zoo binary (default: target/debug/zoo)")
    parser.add_argument("--round-trip", action="store_true")
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    if not os.path.isfile(args.zoo):
        sys.exit(f"no zoo binary at {args.zoo}: build it (cargo build -p zoo) or pass --zoo PATH")
    torch.set_num_threads(2)
    if args.round_trip or args.full_size:
        if args.round_trip:
            round_trip(args.zoo)
        if args.full_size:
            full_size(args.zoo)
    else:
        write_fixtures(args.zoo)
        write_step_fixtures(args.zoo)


if __name__ == "__main__":
    main()
