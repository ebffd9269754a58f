#!/usr/bin/env bash
# Train the shipped models in one fixed slot on one GPU: the fidelity classifier and the three
# U-Nets at once, each with a one-cycle schedule that spans MINUTES of training (--minutes),
# so the run fits the slot whatever the GPU's speed. The shipped fidelity classifier was made by this
# script on a lent H200 (6 minutes; its model card has the command). The U-Nets of that slot were
# not shipped: they trained on an earlier mix with blur, which taught them to over-sharpen photos;
# the shipped U-Nets are CPU fine-tunes (see their model cards).
#
#   bash train/gpu_slot.sh DATA OUT [MINUTES]          # e.g. ../shared/data/tiny-imagenet-200 runs/slot 6
#   DEVICE=cpu EXTRA="--limit 64" bash train/gpu_slot.sh DATA OUT 0.05    # a smoke run on the CPU
#
# The U-Nets train on the `mix` degradation; the perceptual and cross-conv U-Nets start from the
# shipped classifier (weights/classifier), the lesson's recipe. The fidelity classifier is a
# different architecture (wide preset, pre-activation), another seed, and never sees a U-Net.
set -uo pipefail
data=$1 out=$2 minutes=${3:-6}
device=${DEVICE:-cuda}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$out"

# Decode the images once, before four processes would race to build the same cache.
python - "$data" "$out/cache" <<'EOF'
import sys
from restoration.data.datasets import TinyImageNet, load_cache
for split in ("train", "val"):
    load_cache(TinyImageNet(sys.argv[1], split), 64, sys.argv[2], desc=f"caching {split}")
EOF

common=(--data "$data" --device "$device" --cache-dir "$out/cache" --minutes "$minutes")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}  # four processes share the machine's cores
python -m train.classifier "${common[@]}" --out "$out/fidelity" --preset wide --preact --seed 1 \
    --batch-size 128 --lr 6e-3 "${extra[@]}" > "$out/fidelity.log" 2>&1 &
python -m train.superres "${common[@]}" --out "$out/unet-mse" --variant mse --degradation mix \
    --batch-size 128 "${extra[@]}" > "$out/unet-mse.log" 2>&1 &
python -m train.superres "${common[@]}" --out "$out/unet-perceptual" --variant perceptual --degradation mix \
    --classifier weights/classifier --batch-size 128 "${extra[@]}" > "$out/unet-perceptual.log" 2>&1 &
python -m train.superres "${common[@]}" --out "$out/unet-crossconv" --variant crossconv --degradation mix \
    --classifier weights/classifier --batch-size 128 "${extra[@]}" > "$out/unet-crossconv.log" 2>&1 &

status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for run in fidelity unet-mse unet-perceptual unet-crossconv; do
    echo "== $run: $(tail -n 1 "$out/$run/metrics.jsonl" 2>/dev/null || echo 'no metrics')"
done
exit $status
