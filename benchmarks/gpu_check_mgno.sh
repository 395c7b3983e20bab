#!/usr/bin/env bash
# GPU check for the MgNO issue (repo root, CUDA machine, ~9 min): variant throughput and
# memory in fp32/bf16 (batch 8), then the paper's Darcy-smooth set-up at full size (421^2
# generated on the host CPUs, ::2 -> 211^2, 678,093-param MgNO, bf16-mixed) for at most
# ${MAX_TIME:-00:00:05:30} of training.
set -uo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for prec in fp32 bf16; do
  python3 benchmarks/mgno_variants.py --device cuda --precision "$prec" --steps 10 --no-isolate
done
python3 train.py experiment=mgno_darcy_smooth trainer=gpu data.generate.workers=${WORKERS:-15} \
  trainer.max_epochs=${EPOCHS:-100} +trainer.max_time=${MAX_TIME:-00:00:05:30} \
  ~callbacks.progress_bar task_name=gpu_smooth paths.output_root=${OUT:-outputs} \
  2>&1 | grep -vE "Epoch|━" | tail -22
