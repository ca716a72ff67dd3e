#!/bin/bash
# The GPU checks as one call (what a lent GPU machine ran for the README's "On a GPU" section):
# unpack the data, run every CUDA path once on train-small, then bench/gpu.py (throughput and time to 98.5%).
# Usage: bash bench/gpu_session.sh [ARCHIVE] [gpu.py flags...]   (ARCHIVE: the shipped cifake-seed.tar.gz)
# Each step is time-limited and its failure does not stop the next, so one call reports on all of them.
set -u
export PYTHONUNBUFFERED=1
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's packages, installed editable or not
archive=${1:-../shared/datasets/cifake-seed.tar.gz}
shift $(( $# > 0 ? 1 : 0 ))
T0=$(date +%s); stamp() { echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
stamp setup; nvidia-smi -L; $PY -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name())"
stamp prepare; $PY prepare.py "$archive" 2>&1 | tail -1
stamp cuda-train; timeout 90 $PY train.py --model model_2 --train-path train-small --epochs 2 --device cuda --no-progress --out runs/cuda-small 2>&1 | tail -4
stamp cuda-evaluate; timeout 60 $PY evaluate.py --checkpoint runs/cuda-small/checkpoint.pt --device cuda --robustness --validation 2>&1 | tail -8
stamp cuda-predict; timeout 60 $PY predict.py --checkpoint runs/cuda-small/checkpoint.pt --device cuda --no-progress images/test/FAKE 2>&1 | tail -1
stamp cuda-torchrun; timeout 90 $PY -m torch.distributed.run --standalone --nproc_per_node=1 train.py --model fullres_cnn --train-path train-small --epochs 1 --device cuda --sync-bn --no-progress --out runs/cuda-ddp 2>&1 | tail -2
stamp gpu.py; $PY bench/gpu.py "$@" 2>&1 | grep -v '^epoch'
stamp done
