#!/bin/sh
# The GPU rows of the README: zoo on wgpu (a plain build and a `--features gpu-fusion` build)
# beside PyTorch on CUDA, on one GPU machine, config by config in one interleaved run.
#
#   xtask/gpu_bench.sh PLAIN_ZOO FUSION_ZOO XTASK DATA_DIR OUT_DIR [small] [full] [folder]
#
# DATA_DIR holds Fashion-MNIST's IDX files; XTASK is a built `cargo xtask` binary (the GPU
# machine needs no cargo). Each stage named (all three when none is) writes
# OUT_DIR/STAGE/bench.{md,json}, or bench.partial.json where its time limit stopped it.
set -u
plain=$1 fusion=$2 xtask=$3 data=$4 out=$5
shift 5
root=$(cd "$(dirname "$0")/.." && pwd)
export ZOO_ROOT=$root  # the checkout here, not the one the carried xtask was built in
fm=$root/configs/fashion-mnist
# bench SECONDS STAGE ARGS...: one interleaved run, stopped after SECONDS whatever happens.
bench() {
    limit=$1 stage=$2
    shift 2
    timeout "$limit" "$xtask" bench --backends wgpu --zoo "plain=$plain" --zoo "fusion=$fusion" \
        --against-pytorch --python python3 --pytorch-device cuda --out "$out/$stage" "$@"
}
for stage in ${@:-small full folder}; do
    case $stage in
    # The Fashion-MNIST configs that have no width to scale, as shipped.
    small) bench 150 small --configs $fm/mlp.toml,$fm/lenet5.toml,$fm/lenet5-classic.toml,$fm/lstm.toml,$fm/gru.toml \
        --steps 100 --timeout-s 40 --set "data.dir=$data" ;;
    # The CNNs at full width (their configs ship at 1/8 for the 2-core CPU).
    full) bench 220 full --configs $fm/resnet18.toml,$fm/vgg16.toml,$fm/alexnet.toml,$fm/googlenet.toml,$fm/zfnet.toml \
        --steps 50 --timeout-s 45 --set "data.dir=$data" --set model.width=1.0 ;;
    # ResNet-18 as torchvision's, 224x224 crops of JPEGs on disk (10 classes, batch 64).
    folder)
        timeout 40 "$xtask" image-folder --out /tmp/fm500 --train 2000 --val 200 --test 0 --data-dir "$data" 2>/dev/null
        bench 100 folder --configs "$root/configs/imagenet/resnet18.toml" --steps 20 --timeout-s 60 \
            --set data.dir=/tmp/fm500 --set data.batch_size=64 --set data.eval_batch_size=64 ;;
    *) echo "gpu_bench.sh: unknown stage $stage (small, full or folder)" >&2; exit 2 ;;
    esac
done
