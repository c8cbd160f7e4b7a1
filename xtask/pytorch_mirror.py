"""PyTorch's twin of a zoo image config, timed the way `zoo bench` times zoo.

    python3 xtask/pytorch_mirror.py RESOLVED.toml [--steps 50] [--min-seconds 1] [--threads 2] [--device cpu|cuda]

RESOLVED.toml is a config as `zoo check CONFIG --print-config` writes it (every default filled
in). The network and its loss come from twins.py (one twin per zoo family); this script adds
the same optimizer with the same settings and prints one JSON line: training images/s over
`steps` steps after 5 untimed ones, and inference images/s at the config's evaluation batch
under `torch.no_grad()`, over steps / 4 batches (rounded up) after an untimed one; each clock
then runs on through the same batches until it has run `min_seconds`, as zoo bench does. On
cuda the loss is read back every step and the predictions every batch, as zoo reads them, so
both timings end on a finished GPU. Inputs are random (throughput does not depend on pixel
values), up to 16 distinct batches per clock; zoo's are the dataset's. `cargo xtask bench
--against-pytorch` runs it beside `zoo bench`, config by config. Exit status 3 when torch is
not installed.
"""
import argparse
import json
import sys
import time
import tomllib

try:
    import torch
except ImportError:
    print("torch is not installed (pip install torch)", file=sys.stderr)
    sys.exit(3)

import twins


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
    shape = twins.input_shape(data)
    c, h, w, classes = shape
    torch.manual_seed(train.get("seed", 0))
    model = twins.build(m, shape).to(device)
    model.train()
    opt, loss = optimizer(train, model.parameters()), twins.loss(m)
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
