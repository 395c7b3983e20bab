#!/usr/bin/env bash
# The GPU check (repo root; <= 8 minutes on one H100): every model family trained through
# Lightning for a fixed number of steps in float32 and bf16-mixed, with and without
# torch.compile; one JSON line per run (samples/s, steps/s, peak memory).
#   bash benchmarks/gpu_check.sh            # CUDA, paper-size networks
#   DEVICE=cpu bash benchmarks/gpu_check.sh # reduced sizes on the CPU, no compile (CI runs it)
set -uo pipefail
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
if [ "$DEVICE" = "cuda" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
  "$PY" benchmarks/train_throughput.py --device cuda --steps ${STEPS:-30} --warmup 5 \
    --data-root ${DATA_ROOT:-data/throughput} 2>/dev/null | grep '^{'
else
  "$PY" benchmarks/train_throughput.py --device cpu --size reduced --compile off \
    --steps ${STEPS:-3} --warmup 1 --data-root ${DATA_ROOT:-data/throughput} 2>/dev/null | grep '^{'
fi
