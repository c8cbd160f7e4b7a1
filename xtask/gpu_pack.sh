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
target=${CARGO_TARGET_DIR:-$root/target}/debug
mkdir -p "$dir/fm"
cd "$root"
cargo build --bin zoo --features gpu-fusion
strip -o "$dir/zoo-fusion" "$target/zoo"
# The plain build last, so that target/ holds the tested binary again.
cargo build --workspace --bins
strip -o "$dir/zoo-plain" "$target/zoo"
strip -o "$dir/xtask" "$target/xtask"
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
