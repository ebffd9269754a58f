#!/usr/bin/env bash
# Train the photo family, second generation: the three recipes of lesson 23 (MSE, perceptual,
# cross-conv) fine-tuned on random crops of full-resolution photos, each with a one-cycle schedule
# that spans MINUTES of training (--minutes), so a run fits its slot on any machine. Two phases on
# two processes: the MSE U-Net and the cross-conv U-Net at once, then the perceptual U-Net from the
# new MSE weights (its recipe starts from what the MSE recipe learned).
#
#   bash train/photo_family.sh OUT [MINUTES]                 # e.g. runs/photo 180 (a 2-core CPU: 1 thread each)
#   DEVICE=cuda OMP_NUM_THREADS=4 bash train/photo_family.sh runs/photo 10       # a GPU slot
#   EXTRA="--limit 16 --val-limit 2 --crops-per-epoch 64" bash train/photo_family.sh runs/smoke 0.2
#   PHASES=2 bash train/photo_family.sh runs/photo 60        # only the perceptual U-Net (OUT/photo-mse exists)
#
# MINUTES is the MSE U-Net's; the perceptual and cross-conv U-Nets get PERCEPTUAL_MINUTES
# (default: half of it). Every run resumes where it stopped when the script is run again.
#
# Data: ../shared/data/photos (its README gives the sources and terms): train/ for training only,
# val/ (Kodak24, McMaster18) for every choice and the reported figures. Each generation continues the
# shipped one: the MSE U-Net from weights/photo-mse, the cross-conv U-Net from weights/photo-crossconv
# (the MSE weights do not fit its cross-conv skips). The perceptual and cross-conv losses compare the
# lesson classifier's features (weights/classifier), as the lesson does, after its first three
# stages, on a lightly blurred copy, with a grain term (no high-frequency error where the original is
# flat) and a detail term (as much local gradient energy as the original); docs/results.md has the
# probes that chose them. Crops of 96² (the literature's 48² low-resolution patches).
#
# The degradation mix was chosen on val in issue 17 (docs/results.md): clean kernels dominant,
# bicubic drawn 70% of the time; JPEG on half the inputs at qualities 50-90; mild noise. Validation
# during training scores 12 of the val photos (a fixed sample) to save time.
set -uo pipefail
out=$1 minutes=${2:-180}
perceptual_minutes=${PERCEPTUAL_MINUTES:-$(python -c "print($minutes / 2)")}
phases=${PHASES:-1,2}
device=${DEVICE:-cpu}
data=${DATA:-../shared/data/photos}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$out"

# Decode the photos once, before two processes would race to build the same cache.
python - "$data" "$out/cache" <<'EOF'
import sys
from restoration.data.datasets import ImageFolder, load_photos
for split in ("train", "val"):
    load_photos(ImageFolder(f"{sys.argv[1]}/{split}"), sys.argv[2], desc=f"decoding {split}")
EOF

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two processes share the machine's cores
common=(--data "$data/train" --val-data "$data/val" --device "$device" --cache-dir "$out/cache"
        --crops-per-epoch 8000 --val-limit 12 --size 96 --batch-size 16 --no-erase
        --degradation mix --mix-weights 0.15,0.7,0.05,0.1 --mix-jpeg 0.5 --mix-quality 50,90 --mix-noise 0.05)
recipe=(--classifier weights/classifier --freeze-epochs 0 --features 1:1,2:0.3,3:0.1 --antialias --grain 1
        --detail "${DETAIL:-1}")

# A run folder that holds a run is resumed; one that does not is started.
train() {
    local name=$1; shift
    local resume=()
    [ -f "$out/$name/trainer_state.json" ] && resume=(--resume)
    python -m train.superres "${common[@]}" --out "$out/$name" "$@" "${resume[@]}" "${extra[@]}" >> "$out/$name.log" 2>&1
}

status=0
if [[ $phases == *1* ]]; then
    train photo-mse --variant mse --init weights/photo-mse --lr 1e-3 --minutes "$minutes" &
    train photo-crossconv --variant crossconv --init weights/photo-crossconv --lr 5e-4 --minutes "$perceptual_minutes" \
        "${recipe[@]}" &
    for job in $(jobs -p); do wait "$job" || status=1; done
fi
if [[ $phases == *2* ]] && [ $status = 0 ]; then
    train photo-perceptual --variant perceptual --init "$out/photo-mse" --lr 5e-4 --minutes "$perceptual_minutes" \
        "${recipe[@]}" || status=1
fi
for run in photo-mse photo-crossconv photo-perceptual; do
    echo "== $run: $(tail -n 1 "$out/$run/metrics.jsonl" 2>/dev/null || echo 'no metrics')"
done
exit $status
