#!/bin/sh
# Packs what xtask/gpu_bench.sh needs on a GPU machine that has no cargo, into DIR (give one
# that git ignores, inside the checkout, so that it travels with it):
#
#   xtask/gpu_pack.sh DIR
#
# DIR/zoo-plain.xz, DIR/zoo-fusion.xz (`--features gpu-fusion`) and DIR/xtask.xz, stripped
# and compressed (about 40 MB together), and DIR/fm/, the first 20,000 training and 5,000 test
# images of Fashion-MNIST. There: `xz -d DIR/*.xz; chmod +x DIR/zoo-* DIR/xtask;
# xtask/gpu_bench.sh DIR/zoo-plain DIR/zoo-fusion DIR/xtask DIR/fm OUT`.
set -eu
dir=$1
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$dir/fm"
cd "$root"
cargo build --workspace --bins
strip -o "$dir/zoo-plain" "$target/debug/zoo"
strip -o "$dir/xtask" "$target/debug/xtask"
# Burn with other features: in a target directory of its own, so that the tested one keeps
# one build of Burn (.ci/run checks it). A cold build: about 20 minutes the first time.
CARGO_TARGET_DIR=$target/gpu-fusion cargo build --bin zoo --features gpu-fusion
strip -o "$dir/zoo-fusion" "$target/gpu-fusion/debug/zoo"
xz -T0 -6 -f "$dir/zoo-fusion" "$dir/zoo-plain" "$dir/xtask"
python3 - "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$dir/fm" <<'PY'
import gzip, struct, sys
src, out = sys.argv[1:]
for name, n in [("train-images-idx3-ubyte.gz", 20000), ("train-labels-idx1-ubyte.gz", 20000),
                ("t10k-images-idx3-ubyte.gz", 5000), ("t10k-labels-idx1-ubyte.gz", 5000)]:
    data = gzip.open(f"{src}/{name}").read()
    dims = data[3]  # IDX: two zero bytes, the type, the number of dimensions
    shape = list(struct.unpack(f">{dims}I", data[4:4 + 4 * dims]))
    per_item = len(data[4 + 4 * dims:]) // shape[0]
    shape[0] = n
    header = data[:4] + struct.pack(f">{dims}I", *shape)
    with gzip.open(f"{out}/{name}", "wb") as f:
        f.write(header + data[4 + 4 * dims:4 + 4 * dims + n * per_item])
PY
ls -l "$dir"
