#!/bin/bash
# GPU checks of humanpose, as one short script for a lent GPU machine (the `device` tool):
#   tools/device_check.sh DATA [REF.json]
# DATA holds lsp/ and lspet/ in the LSP layouts (lspet/ may be a subset, e.g. the 500 validation
# images with their joints.mat) and optionally media/street_people.avi; REF.json is a CPU
# `humanpose eval --data DATA/lspet --format lspet --json` report to compare the GPU's with.
# It runs, on CUDA (model.device: cuda, so that a missing GPU is an error, not a CPU fallback):
#   1. eval on DATA/lspet, compared with REF.json (the same weights must give the same PCK);
#   2. bench of the compact nets and cpm_vgg (random weights unless converted ones are given);
#   3. a short pose training from the shipped weights, one loader thread, then four and twelve
#      loader processes (steps per second from log.csv), and a resume of the last.
# Reports go to $OUT (default /tmp/humanpose_device_check); nothing is written elsewhere.
# DEVICE=cpu QUICK=1 tools/device_check.sh DATA tries the script itself on a machine without one.
set -u
DATA=$(realpath "${1:?usage: tools/device_check.sh DATA [REF.json]}")
REF=${2:+$(realpath "$2")}
OUT=${OUT:-/tmp/humanpose_device_check}
DEVICE=${DEVICE:-cuda}
q() { if [ -n "${QUICK:-}" ]; then echo "$1"; else echo "$2"; fi; }   # q DRY-RUN-VALUE VALUE
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'opencv', cv2.__version__)"
sed "s/^\(  device:\) [a-z]*/\1 $DEVICE/" humanpose.yml > "$OUT/cuda.yml"
grep -q "device: $DEVICE" "$OUT/cuda.yml" || { echo "could not set model.device in $OUT/cuda.yml"; exit 2; }

echo "== 1. eval on CUDA"
C=""; [ -n "$REF" ] && C="--compare $REF"; [ -n "${QUICK:-}" ] && C="--limit 5"
python3 -m humanpose eval --data "$DATA/lspet" --format lspet --config "$OUT/cuda.yml" \
  --json "$OUT/eval_cuda.json" --no-progress $C 2>&1 | tail -4

echo "== 2. bench on CUDA"
SRC=""; [ -f "$DATA/media/street_people.avi" ] && SRC="--source $DATA/media/street_people.avi"
python3 -m humanpose bench --config "$OUT/cuda.yml" --boxsizes 128 192 368 --frames $(q 2 30) $SRC 2>&1 \
  | tee "$OUT/bench.txt" | tail -14

echo "== 3. training on CUDA"
train() {   # NAME LOADERS STEPS
  cat > "$OUT/$1.yml" <<EOF
kind: pose
data: $DATA
val_images: 100
init: $PWD/models/pose_compact.safetensors
batch_size: $(q 4 64)
sizes: [128, 160, 192]
lr: 0.0001
positive_weight: 10.0
steps: $3
loaders: $2
threads: 4
device: $DEVICE
run_dir: $OUT/$1
cache_dir: $OUT/cache
checkpoint_every: 50
val_every: $3
EOF
  python3 -m humanpose train "$OUT/$1.yml" --no-progress $(q "--steps 21" "") 2>&1 | tail -3
  python3 - "$OUT/$1/log.csv" "$1" $(q 4 64) <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
a, b = rows[0], rows[-2 if len(rows) > 2 else -1]   # start-up and the final validation excluded
steps, secs = int(b["step"]) - int(a["step"]), float(b["elapsed_s"]) - float(a["elapsed_s"])
print(f"{sys.argv[2]}: steps {a['step']}-{b['step']}, {steps / max(secs, 1e-9):.1f} steps/s "
      f"(batch {sys.argv[3]}), loss {a['loss']} -> {b['loss']}")
EOF
}
train loaders1 1 100
train loaders4 4 200
train loaders12 12 300
python3 -m humanpose train "$OUT/loaders12.yml" --steps $(q 41 340) --no-progress 2>&1 | tail -2
ls -la "$OUT"/loaders12
