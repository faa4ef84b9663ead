#!/usr/bin/env bash
# Every notebook on CUDA and every GPU figure the course quotes, in one run of about 9 minutes on one CUDA GPU.
# Outputs in OUT (runs/gpu).
#
#     bash bench/prepare_offline.sh     # first, where there is internet, when the GPU machine has none
#     bash bench/gpu.sh [OUT]
#     bash bench/gpu.sh --trial [OUT]   # the same steps, tiny, on a CPU: check the script before spending GPU time
#
# 1. the machine: GPU, driver, torch
# 2. every solved notebook top to bottom at CI sizes (IS_CI), run by nbval as CI runs them, each timed: on a GPU each
#    takes its CUDA branch (device choice, bf16, the weight average, compile or its fallback, the fused twins,
#    checkpoints); a failing notebook is reported and the run goes on
# 3. one training step taken apart (ddpm_course.profile_step): our U-Net as written, with its fused twins, and
#    the peer (diffusers' UNet2DModel): FLOPs, kernels, syncs, bytes, the floor from ceilings measured there, the time
# 4. the benchmark (ddpm_course.benchmark): training and sampling images/s of both models in each setting and the
#    ratio of their bests; then FMNIST-FID beside its floor after our best setting trains for the CUDA recipe's budget
#    (cut so that the benchmark ends within --total-s), and the time of 2048 samples with all 1000 steps
set -uo pipefail
cd "$(dirname "$0")/.."
trial=0
if [ "${1:-}" = "--trial" ]; then trial=1; shift; fi
out=${1:-runs/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .offline/wheels ] && ! python3 -c "import diffusers, nbval, ipykernel" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/offline-site .offline/wheels/*.whl &&
        export PYTHONPATH="$PYTHONPATH:/tmp/offline-site"
fi
if [ -d .offline/fashion-mnist ]; then export DDPM_DATA_DIR="$PWD/.offline/fashion-mnist"; fi

if [ $trial = 1 ]; then
    profile=(--device cpu --batch-size 4 --steps 1)
    bench=(--device cpu --batch-size 4 --train-steps 1 --warmup-steps 1 --sampling-steps 20 --timed-steps 2
        --sample-batch 8 --fid-n 16 --budget-s 5 --n-train 256 --ours eager,fused --peer eager --total-s 60)
else
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
    profile=(--steps 20)
    bench=(--ours fused,fused+graphs,fused+cl --peer eager,graphs --sample-batch 2048 --timed-steps 50 --total-s 360)
fi
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
for notebook in solutions/part*_*.ipynb; do
    start=$SECONDS
    IS_CI=1 python3 -m pytest -q -p no:cacheprovider --nbval-lax "$notebook" >"$out/$(basename "$notebook" .ipynb).txt" 2>&1
    code=$?
    echo "notebook $notebook: exit $code in $((SECONDS - start)) s ($(tail -n 1 "$out/$(basename "$notebook" .ipynb).txt"))"
done 2>&1 | tee "$out/notebooks.txt"
python3 -m ddpm_course.profile_step --models ours,ours+fused,peer "${profile[@]}" 2>&1 | tee "$out/profile.txt"
python3 -m ddpm_course.benchmark "${bench[@]}" --out "$out/bench" 2>&1 | tee "$out/benchmark.txt"
