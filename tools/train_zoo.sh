#!/usr/bin/env bash
# Train, evaluate and register the CIFAR-10 model zoo (checkpoints/cifar10-*.pt).
#
#   tools/train_zoo.sh STEP...      e.g.  tools/train_zoo.sh robust ciard nopush
#
# Steps, in dependency order (every student needs both teachers in the zoo):
#   clean robust                     the two teachers (ResNet-20)
#   ciard nopush noitt mtard rslad ard pgdat
#                                    students: ResNet-20, identical data (the 45,000-image
#                                    train split), epochs (3) and attack budget (PGD-3, 3/255)
#   aa-RUN (e.g. aa-ciard-resnet20)  AutoAttack + transfer attacks on 1,000 test images for
#                                    an entry already registered
# Each training step trains (runs/zoo/NAME), evaluates the best checkpoint on the full
# 10,000-image test set (clean, FGSM, PGD-SAT, PGD-TRADES, CW-inf) and registers it with
# `python -m ciard zoo add`. The commands written into the manifest are the ones run here.
# REGISTER_SECONDS=S: skip training (the run exists), evaluate and register with S seconds.
# CIFAR10_ARCHIVE: path of cifar10-jpeg.tar.gz (default: ../shared/data/cifar10-jpeg.tar.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARCHIVE=${CIFAR10_ARCHIVE:-../shared/data/cifar10-jpeg.tar.gz}
DATA="--dataset cifar10-archive --data-path $ARCHIVE"
RUNS=runs/zoo
TEACHERS="--clean-teacher zoo:cifar10-clean-resnet20 --robust-teacher zoo:cifar10-robust-resnet20"
# the students' shared budget; lr 0.5 for the methods whose KD terms use the reference's
# class-averaged KL (1/C of the usual scale), 0.1 for the full-scale losses (RSLAD, ARD, PGD-AT)
STUDENT="--student resnet20 --epochs 3 --batch-size 128 --pgd-steps 3 --pgd-step-size 3/255 \
--lr-schedule cosine --weight-decay 2e-4 --itt-lr 1e-3 --eval-size 1000 --eval-pgd-steps 10 $TEACHERS"
NOTE_DATA="Trained on the 45,000-image train split of the CIFAR-10 JPEG archive (quality 75; \
5,000 images held out for validation/selection), evaluated on its 10,000 test images: figures are \
not directly comparable with PNG CIFAR-10."

# train NAME ROLE NOTES ARGS...: train, evaluate on the full test set, register
train() {
    local name=$1 role=$2 notes=$3; shift 3
    local cmd="python -m ciard train $DATA $* --test-size 0 --checkpoint-every 100 --no-progress --out-dir $RUNS --name $name"
    echo "== $name: $cmd"
    local secs
    if [[ -n ${REGISTER_SECONDS:-} ]]; then   # already trained with this command: register only
        secs=$REGISTER_SECONDS
    else
        rm -rf "$RUNS/$name"
        local t0=$SECONDS
        $PY -m ciard train $DATA "$@" --test-size 0 --checkpoint-every 100 --no-progress --out-dir $RUNS --name "$name"
        secs=$((SECONDS - t0))
    fi
    local ecmd="python -m ciard eval --checkpoint zoo:cifar10-$name $DATA --n 0 --json"   # same weights as $RUNS/$name
    $PY -m ciard eval --checkpoint "$RUNS/$name" $DATA --n 0 --json > "$RUNS/$name/eval-full.json"
    local default=()
    [[ $role != student ]] && default=(--default)
    $PY -m ciard zoo add --name "cifar10-$name" --checkpoint "$RUNS/$name" --role "$role" --dataset cifar10 \
        "${default[@]}" --train-command "$cmd" --train-seconds "$secs" \
        --eval-json "$RUNS/$name/eval-full.json" --eval-command "$ecmd" --notes "$notes $NOTE_DATA" > /dev/null
    echo "== $name: trained in ${secs}s, registered as cifar10-$name"
}

# aa NAME SOURCE: AutoAttack, the white-box PGD/CW attacks and their transfer twins (crafted on SOURCE) on 1,000 test images
aa() {
    local name=$1 source=$2
    local ecmd="python -m ciard eval --checkpoint zoo:cifar10-$name $DATA --n 1000 --attacks clean,pgd_sat,pgd_trades,cw,autoattack,bb_pgd_trades,bb_cw --source zoo:$source --json"
    echo "== $name: $ecmd"
    $PY -m ciard eval --checkpoint "zoo:cifar10-$name" $DATA --n 1000 \
        --attacks clean,pgd_sat,pgd_trades,cw,autoattack,bb_pgd_trades,bb_cw --source "zoo:$source" --json > "$RUNS/$name/eval-aa.json"
    $PY -m ciard zoo merge-eval --name "cifar10-$name" --eval-json "$RUNS/$name/eval-aa.json" --eval-command "$ecmd"
}

for step in "$@"; do
    case $step in
        clean)  train clean-resnet20 clean_teacher "Clean teacher: natural training, 30 epochs, cosine lr." \
                    --method natural --student resnet20 --epochs 30 --lr 0.1 --lr-schedule cosine \
                    --weight-decay 5e-4 --eval-size 1000 --eval-pgd-steps 0 ;;
        robust) train robust-resnet20 robust_teacher "Robust teacher: FGSM with random start (fast AT, step 1.25 eps), 15 epochs, cosine lr; best epoch by validation (clean + PGD-10) / 2." \
                    --method fgsm_at --student resnet20 --epochs 15 --lr 0.1 --lr-schedule cosine \
                    --weight-decay 5e-4 --eval-size 1000 --eval-pgd-steps 10 ;;
        ciard)  train ciard-resnet20 student "CIARD (push loss and ITT on)." --method ciard --lr 0.5 $STUDENT ;;
        nopush) train nopush-resnet20 student "CIARD without the push loss (lambda 0)." --method ciard --push-weight 0 --lr 0.5 $STUDENT ;;
        noitt)  train noitt-resnet20 student "CIARD without ITT (robust teacher frozen)." --method ciard --no-itt --lr 0.5 $STUDENT ;;
        mtard)  train mtard-resnet20 student "MTARD: two teachers, adaptive weights, no push, no ITT." --method mtard --lr 0.5 $STUDENT ;;
        rslad)  train rslad-resnet20 student "RSLAD: robust teacher's soft labels." --method rslad --lr 0.1 $STUDENT ;;
        ard)    train ard-resnet20 student "ARD: KD from the robust teacher (T 30) + CE." --method ard --lr 0.1 $STUDENT ;;
        pgdat)  train pgdat-resnet20 student "PGD-AT (Madry), no teacher: same data, epochs and attack." --method pgd_at --lr 0.1 $STUDENT ;;
        aa-robust-resnet20) aa robust-resnet20 cifar10-clean-resnet20 ;;   # its own transfer would be white-box
        aa-*)   aa "${step#aa-}" cifar10-robust-resnet20 ;;
        *) echo "unknown step '$step'" >&2; exit 2 ;;
    esac
done
