#!/usr/bin/env bash
# GPU check (run on a CUDA machine from the repo root): MgNO training-step throughput in
# fp32 and bf16 autocast, then the full Lightning path (trainer=gpu, bf16-mixed) on 64x64
# Darcy with the paper's Darcy MgNO. Prints JSON lines and the run summary.
set -uo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
for prec in fp32 bf16; do
  python3 benchmarks/mgno_speed.py --device cuda --precision "$prec" --resolutions 64 128 256 --batch 8 --steps 20
  python3 benchmarks/mgno_speed.py --device cuda --precision "$prec" --resolutions 64 256 --batch 64 --steps 10
done
# End to end: data generated on the host CPUs, 30 epochs of the Darcy-rough MgNO on the GPU.
python3 train.py trainer=gpu data=darcy64 model=mgno data.generate.workers=8 \
  trainer.max_epochs=${EPOCHS:-30} module.lr=1e-3 ~callbacks.progress_bar task_name=gpu_check \
  paths.output_root=${OUT:-outputs} 2>&1 | grep -vE "Epoch|━" | tail -25
