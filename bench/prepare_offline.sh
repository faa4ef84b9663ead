#!/usr/bin/env bash
# Gather into .offline/ (git-ignored) what bench/gpu.sh needs on a GPU machine that cannot reach the internet:
# the four FashionMNIST files; wheels of the benchmark's peer (diffusers) and the one package it needs that a
# typical CUDA PyTorch image lacks (importlib-metadata); and wheels of what runs the notebooks as CI does (nbval,
# ipykernel and theirs, about 17 MB), all built for that machine's Python.
#
#     bash bench/prepare_offline.sh          # for Python 3.12 on x86-64 Linux
#     bash bench/prepare_offline.sh 3.11
#
# Copy the repository with .offline/ in it to the GPU machine; bench/gpu.sh finds it there.
set -euo pipefail
cd "$(dirname "$0")/.."
python_version=${1:-3.12}
mkdir -p .offline/fashion-mnist .offline/wheels

# 1. the data, found (or downloaded, with checksums) where the course's loader finds it
python - <<'PY'
import shutil
from pathlib import Path

from utils.datasets.fashion_mnist import FILES, default_data_dir, locate

for specs in FILES.values():
    for spec in specs:
        shutil.copy(locate(spec, default_data_dir()), Path(".offline/fashion-mnist") / spec.name)
PY

# 2. the wheels, for the GPU machine's Python rather than this one's
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux2014_x86_64 --platform any -d .offline/wheels \
    "diffusers==0.42.1" "importlib-metadata==8.7.0"
# with their own needs, resolved for that Python; a CUDA image has pytest, but seldom Jupyter
python -m pip download --quiet --only-binary=:all: --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .offline/wheels "nbval==0.11.0" "ipykernel>=6"
du -sh .offline/*
