#!/usr/bin/env python3
"""torchvision's side of `cargo xtask bench-loader`: images/s of ImageFolder + DataLoader with
torchvision's reference training transform (RandomResizedCrop, RandomHorizontalFlip, ToTensor,
Normalize with ImageNet's mean and std), timed as `zoo bench --loader-only` times zoo's loader:
one untimed batch, then BATCHES batches. Prints one JSON object; exits 3 without torch."""

import argparse
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", help="the image folder (its train/ is read)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        import torch
        import torchvision
        from torchvision import datasets, transforms
    except ImportError as e:
        print(f"torch or torchvision is not installed: {e}", file=sys.stderr)
        sys.exit(3)

    torch.manual_seed(0)
    transform = transforms.Compose([
        transforms.RandomResizedCrop(args.size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    dataset = datasets.ImageFolder(f"{args.dir}/train", transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    batches = iter(loader)
    next(batches)
    images, started = 0, time.perf_counter()
    for _ in range(args.batches):
        x, _ = next(batches)
        images += x.shape[0]
    seconds = time.perf_counter() - started
    print(json.dumps({
        "images_per_second": images / seconds,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "workers": args.workers,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }))


if __name__ == "__main__":
    main()
