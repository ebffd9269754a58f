#!/usr/bin/env bash
# Train the photo family: the three recipes of lesson 23 (MSE, perceptual, cross-conv) fine-tuned
# at once on random crops of full-resolution photos, each with a one-cycle schedule that spans
# MINUTES of training (--minutes), so the run fits its slot on any machine.
#
#   bash train/photo_family.sh OUT [MINUTES]                 # e.g. runs/photo 60 (a 2-core CPU: 1 thread each)
#   DEVICE=cuda OMP_NUM_THREADS=4 bash train/photo_family.sh runs/photo 10       # a GPU slot
#   EXTRA="--limit 16 --val-limit 2 --crops-per-epoch 64" bash train/photo_family.sh runs/smoke 0.2
#
# Data: ../shared/data/photos (its README gives the sources and terms): train/ for training only,
# val/ (Kodak24, McMaster18) for every choice and the reported figures. Each run starts from the
# nearest shipped checkpoint: the MSE and perceptual U-Nets from the lesson's MSE U-Net (the shipped
# perceptual U-Net's decoder draws a grid texture on smooth skies; the MSE weights do not), the
# cross-conv U-Net from the lesson's cross-conv U-Net. The perceptual and cross-conv losses compare
# the lesson classifier's features (weights/classifier), as the lesson does; their encoders are
# already trained, so nothing is frozen.
#
# The degradation mix was chosen on val (the closing note of issue 17 has the sweep): clean
# kernels dominant, bicubic drawn 70% of the time; JPEG on half the inputs at qualities 50-90; mild
# noise. Validation during training scores 12 of the val photos (a fixed sample) to save time.
set -uo pipefail
out=$1 minutes=${2:-60}
device=${DEVICE:-cpu}
data=${DATA:-../shared/data/photos}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$out"

# Decode the photos once, before three processes would race to build the same cache.
python - "$data" "$out/cache" <<'EOF'
import sys
from restoration.data import ImageFolder, load_photos
for split in ("train", "val"):
    load_photos(ImageFolder(f"{sys.argv[1]}/{split}"), sys.argv[2], desc=f"decoding {split}")
EOF

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # three processes share the machine's cores
common=(--data "$data/train" --val-data "$data/val" --device "$device" --cache-dir "$out/cache"
        --minutes "$minutes" --crops-per-epoch 32000 --val-limit 12
        --size 64 --batch-size 16 --lr 1e-3 --no-erase
        --degradation mix --mix-weights 0.15,0.7,0.05,0.1 --mix-jpeg 0.5 --mix-quality 50,90 --mix-noise 0.05)
python -m train.superres "${common[@]}" --out "$out/photo-mse" --variant mse \
    --init weights/unet-mse "${extra[@]}" > "$out/photo-mse.log" 2>&1 &
python -m train.superres "${common[@]}" --out "$out/photo-perceptual" --variant perceptual \
    --init weights/unet-mse --classifier weights/classifier --freeze-epochs 0 "${extra[@]}" \
    > "$out/photo-perceptual.log" 2>&1 &
python -m train.superres "${common[@]}" --out "$out/photo-crossconv" --variant crossconv \
    --init weights/unet-crossconv --classifier weights/classifier --freeze-epochs 0 "${extra[@]}" \
    > "$out/photo-crossconv.log" 2>&1 &

status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for run in photo-mse photo-perceptual photo-crossconv; do
    echo "== $run: $(tail -n 1 "$out/$run/metrics.jsonl" 2>/dev/null || echo 'no metrics')"
done
exit $status
