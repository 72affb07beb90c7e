#!/usr/bin/env bash
# Train, evaluate and register the CIFAR-10 model zoo (checkpoints/cifar10-*.pt). Resumable.
#
#   tools/train_zoo.sh STEP...      e.g.  tools/train_zoo.sh clean robust
#   tools/train_zoo.sh chain        every step below, in order, skipping those already done
#
# Steps, in dependency order (every student needs both teachers in the zoo):
#   clean robust                     two airbench94 teachers (see ciard/models/airbench.py); the
#                                    students' clean teacher is the first zoo's ResNet-20 (CLEAN below)
#   lr                               the student lr rule: pilots of CIARD, RSLAD and ARD at each
#                                    candidate lr on a shortened budget, scored on the validation
#                                    split only; tools/choose_lr.py writes checkpoints/zoo-lr-rule.json
#   ciard defaults nopush noitt mtard rslad ard pgdat
#                                    students: ResNet-20, identical data (the train split less the
#                                    1,000 held-out validation images), budget, lr rule and selection;
#                                    `defaults` (once the CIARD student distilled from the new
#                                    teachers is in) makes those teachers the ones `auto` picks, so
#                                    the app's default student is shown with its own teachers
#                                    (then re-measure `make demo`: its `auto` robust teacher
#                                    becomes airbench94, 2.9x a ResNet-20's forward FLOPs)
#   lr-newer dgad adaad kdiga-gamma kdiga peeraid
#                                    the newer baselines, the same data, budget and selection
#                                    (after every step above in the chain, so that adding them
#                                    changed nothing for the steps before them); their losses are
#                                    at other scales than the shared lr was chosen for, so
#                                    lr-newer gives each its own lr by the same pilots and score
#                                    (checkpoints/zoo-lr-newer.json); kdiga-gamma then chooses
#                                    KDIGA's alignment weight by pilots on the validation split
#   aa-NAME (e.g. aa-ciard-resnet20) AutoAttack + transfer attacks on 1,000 test images for
#                                    an entry already registered; the teachers' come right after
#                                    them, so that a robust teacher whose PGD figures hide a masked
#                                    gradient is found before any student is distilled from it
# Each training step trains runs/zoo/NAME, evaluates the best checkpoint on the full 10,000-image
# test set (clean, FGSM, PGD-SAT, PGD-TRADES, CW-inf) and registers it with `python -m ciard zoo
# add`. The commands written into the manifest are the ones run here.
#
# Across sessions (runs/ is not in git, and a session's processes end with it):
#   tools/train_zoo.sh park          stop the chain's trainer at a checkpoint (and any evaluation
#                                    after its last finished batch) and copy every unfinished zoo
#                                    run (last.pt, best.pt, config, metrics, status), evaluation so
#                                    far and failed run's record into zoo-wip/, to be committed;
#                                    the next `chain` (or `unpark`) restores them; it also
#                                    rewrites README.md's retrained-zoo block (tools/readme_zoo.py)
#   tools/train_zoo.sh pause         freeze this checkout's chain where it is (its trainer or
#   tools/train_zoo.sh resume        evaluation too), e.g. to run the test suite on a quiet machine,
#                                    and let it go on; the paused seconds are not counted as the
#                                    training time the manifest records
#
# Resuming: a step whose run directory exists but did not finish continues it with
# `train --resume` (the trainer checkpoints every 100 steps and at every epoch end); a finished
# run is evaluated and registered without training again; a registered one is skipped. The
# seconds of every training session, and the machine it ran on, are appended to NAME/train-seconds;
# registration sums them and records each machine (`zoo add --train-log`).
# Editing this file while a chain runs: bash reads a script as it goes, so an in-place edit can
# make the running chain execute fragments of the new text; write a copy and `mv` it over this
# file (a new inode: the running chain keeps reading the old one).
# CIFAR10_ARCHIVE: path of cifar10-jpeg.tar.gz (default: ../shared/data/cifar10-jpeg.tar.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARCHIVE=${CIFAR10_ARCHIVE:-../shared/data/cifar10-jpeg.tar.gz}
DATA="--dataset cifar10-archive --data-path $ARCHIVE"
RUNS=runs/zoo
# the students' clean teacher: the first zoo's ResNet-20 (natural training, no label smoothing).
# The airbench94 clean teacher (step `clean`, label smoothing 0.2) stalls CIARD together with its
# push term: at the pilots' budget CIARD scored 16.3 with it, 29.75 with this teacher and 28.1 with
# it but the push off (README, "Model zoo"). It stays in the zoo, trained and evaluated.
CLEAN=cifar10-clean-resnet20
ROBUST=cifar10-robust-airbench94
TEACHERS="--clean-teacher zoo:$CLEAN --robust-teacher zoo:$ROBUST"
# the students' shared budget (see README, "Model zoo"): one lr for every distillation method of
# the first zoo (the newer baselines': NEWER_LR_METHODS below)
STUDENT="--student resnet20 --epochs 6 --batch-size 128 --pgd-steps 5 --pgd-step-size 2/255 \
--lr-schedule cosine --weight-decay 2e-4 --itt-lr 1e-3 --eval-size 1000 --eval-pgd-steps 10 $TEACHERS"
# a student's training: that budget in fp32 on every machine. The chain spans sessions whose CPUs
# differ, and `auto` precision is bf16 on CPUs with AVX-512 BF16: every student, and every part
# of a run resumed on another machine, must train at the same precision (the first lr rule's
# pilots kept `auto`, and it records the machines they ran on; the newer methods' lr pilots and
# KDIGA's gamma pilots, which choose for fp32 students, train in fp32)
STUDENT_FP32="$STUDENT --precision fp32"
LR_RULE=checkpoints/zoo-lr-rule.json
LR_CANDIDATES="0.1 0.2 0.5 1.0"
LR_METHODS="ciard rslad ard"   # the methods piloted at each lr (tools/choose_lr.py reads both lines)
# the newer baselines' losses are not all KL averaged over classes, the scale the shared lr was
# chosen for: DGAD sums its KL over classes (10x), KDIGA adds full-scale cross-entropy (weight 0.5),
# PeerAiD trains its peer with one and weighs the student's KL terms by T^2 = 25.
# Check runs at the shared lr 1.0 (2 epochs on 5,000 images) collapsed DGAD and PeerAiD to chance
# and left KDIGA near it (README, "Model zoo"), so each takes its own lr: pilots at LR_CANDIDATES
# on the shared rule's budget, in fp32 like the students, the best validation score per method
# (tools/choose_lr.py --newer)
NEWER_LR_METHODS="dgad adaad kdiga peeraid"
NEWER_LR_RULE=checkpoints/zoo-lr-newer.json
# KDIGA's alignment weight: its author's script has a default (0.5) but the paper's CIFAR-10 values
# were not available (see ciard/methods/kdiga.py), so it is chosen like the lr, by pilots scored on
# the validation split (tools/choose_kdiga_gamma.py): the script's default and the values its
# author's later sweeps used, in the script's scale (the term is gamma/N ||grad difference||_2),
# and one decade more: at batch 128 even gamma 1,000 weighs each sample's gradient difference
# by only about 0.7, so a best pilot at 1,000 would otherwise sit at the edge of the grid
GAMMA_RULE=checkpoints/zoo-kdiga-gamma.json
GAMMA_CANDIDATES="0.5 10 100 1000 10000"
kdiga_gamma() {   # the chosen gamma, if it was chosen at the lr KDIGA trains at now
    [[ -f $GAMMA_RULE ]] || { echo "no $GAMMA_RULE: run the 'kdiga-gamma' step first" >&2; exit 1; }
    local lr; lr=$(newer_lr kdiga)
    $PY -c "import json,sys; r=json.load(open(sys.argv[1])); at=float(r['pilot_budget']['lr']); \
sys.exit(f'{sys.argv[1]} was chosen at lr {at:g}, KDIGA trains at {float(sys.argv[2]):g} now: move it aside and run kdiga-gamma again') \
if at != float(sys.argv[2]) else print(r['chosen_gamma'])" "$GAMMA_RULE" "$lr"
}
newer_lr() {   # METHOD: a newer baseline's own lr (the lr-newer step)
    [[ -f $NEWER_LR_RULE ]] || { echo "no $NEWER_LR_RULE: run the 'lr-newer' step first" >&2; exit 1; }
    $PY -c "import json,sys; print(json.load(open('$NEWER_LR_RULE'))['chosen_lr'][sys.argv[1]])" "$1"
}
student_lr() {   # the lr chosen by the pilots (one for every distillation method of the first zoo)
    [[ -f $LR_RULE ]] || { echo "no $LR_RULE: run the 'lr' step first" >&2; exit 1; }
    $PY -c "import json; print(json.load(open('$LR_RULE'))['chosen_lr'])"
}
NOTE_DATA="Trained on the CIFAR-10 JPEG archive's train split less 1,000 class-balanced images held \
out for validation/selection (quality 75), evaluated on its 10,000 test images: figures are not \
directly comparable with PNG CIFAR-10."
# HARDWARE: this machine, as the manifest records it; asked once, by a chain or step run (it
# imports torch: about 2 s that park, pause and resume need not wait), below
HARDWARE=

state_of() {   # the run's state from status.json, or "none"
    local f="$RUNS/$1/status.json"
    [[ -f $f ]] && $PY -c "import json,sys; print(json.load(open(sys.argv[1])).get('state','none'))" "$f" || echo none
}

registered() {   # NAME COMMAND: in the manifest with this training command, and its weights here
    [[ -f checkpoints/$1.pt ]] && $PY -c "import json,sys; m=json.load(open('checkpoints/manifest.json')); \
sys.exit(0 if any(e['name']==sys.argv[1] and e['command']==sys.argv[2] for e in m['entries']) else 1)" "$1" "$2" 2>/dev/null
}

# commit_entry NAME MESSAGE: commit a registered entry's weights and the manifest (again after a
# session that ended between `zoo add` and the commit: nothing to commit is fine)
commit_entry() {
    git add "checkpoints/$1.pt" checkpoints/manifest.json 2>/dev/null \
        && git commit -qm "$2" -- "checkpoints/$1.pt" checkpoints/manifest.json > /dev/null 2>&1 || true
}

WIP=zoo-wip
# best.pt too: a resumed run keeps its best score, so a later epoch that does not beat it would
# leave no best.pt on a fresh clone
PARKED_FILES="last.pt best.pt config.json metrics.jsonl status.json train-seconds"
FINISHED_FILES="best.pt config.json metrics.jsonl status.json train-seconds train.log eval-full.partial.json"

# ours PATTERN: the processes whose command line matches PATTERN and that run in this checkout
# (another checkout's chain, or a test's scratch copy, is left alone)
ours() {
    local pid here; here=$(pwd -P)
    for pid in $(pgrep -f "$1" 2>/dev/null); do
        [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$here" ]] || continue
        # not park/unpark/pause/resume itself (nor the subshells it forks, which share its command line)
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qE "train_zoo.sh ((un)?park|pause|resume)" && continue
        echo "$pid"
    done
    return 0
}

# keep DIR WIPNAME FILE...: zoo-wip/WIPNAME becomes a copy of those FILEs that DIR has
keep() {
    local d=$1 to=$WIP/$2 f; shift 2
    rm -rf "${to:?}"; mkdir -p "$to"
    for f in "$@"; do [[ -f $d/$f ]] && cp "$d/$f" "$to/"; done
    return 0
}

# chains: this checkout's running chains, i.e. bash running this script (not park/unpark/pause/resume, nor a
# pager or editor that merely names the file)
chains() {
    local pid
    for pid in $(ours "train_zoo.sh"); do
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == bash ]] || continue
        [[ $(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | sed -n 2p) == *train_zoo.sh ]] && echo "$pid"
    done
    return 0
}

# live_runs: the run directories whose trainer is running, here and now: its status says
# "running" and its pid is one of this checkout's `ciard train` processes (see ours; a status
# left "running" by a killed trainer is not, even once its pid has been reused)
live_runs() {
    $PY - "$RUNS" $(ours "ciard train") <<'PYEOF'
import json, sys
from pathlib import Path
trainers = set(sys.argv[2:])
for st in sorted(Path(sys.argv[1]).glob("*/status.json")):
    try:
        s = json.loads(st.read_text())
    except (OSError, ValueError):
        continue   # being replaced, or damaged: the next pass reads it
    if s.get("state") == "running" and str(s.get("pid")) in trainers:
        print(st.parent)
PYEOF
}

park() {   # ask running zoo trainers to stop at a checkpoint, then keep their runs in zoo-wip/
    local d name
    mkdir -p "$RUNS" && touch "$RUNS/PARKING"   # a chain still running starts nothing new (see parking)
    # Until this checkout's chain has exited and no run is running: stop each evaluation and ask
    # each running trainer to stop. Again and again, not once: a chain that had passed its
    # `parking` check just before PARKING appeared may start one more trainer or evaluation
    # (a trainer reports "running" only once loaded, about 10 s later); it is stopped too.
    # Evaluations keep every finished attack and batch (--partial): stop them now, not at the
    # session's end. SIGTERM, not SIGINT: a chain started in the background (nohup ... &) runs its
    # children with SIGINT ignored; the results file is replaced atomically at each attack's and
    # batch's end, so a stop loses only the batch under way. A trainer honours STOP after its
    # current step, and the chain that ran it records its seconds as it exits.
    local pid pids busy signalled=" "
    [[ -f $RUNS/PAUSED ]] && resume   # a stopped process cannot honour a stop request
    for _ in $(seq 900); do
        busy=0
        pids=$(ours "ciard eval --checkpoint (runs/zoo/|zoo:cifar10-)")
        for pid in $pids; do
            busy=1
            [[ $signalled == *" $pid "* ]] && continue
            kill -TERM "$pid" 2>/dev/null || true
            signalled+="$pid "
        done
        for d in $(live_runs); do
            busy=1
            [[ -f $d/STOP ]] || touch "$d/STOP"
        done
        [[ -n $(chains) ]] && busy=1
        (( busy )) || break
        sleep 1
    done
    (( busy )) && echo "== park: something still runs after 900 tries (at least 15 min); what it parks may be incomplete" >&2
    for d in "$RUNS"/*/; do
        [[ -d $d ]] || continue
        name=$(basename "$d")
        # an AutoAttack step's attacks so far (until merged into the manifest), in a folder of its
        # own: the training run's parked copy is dropped once that run is registered
        if [[ -f $d/eval-aa.partial.json && ! -f $d/aa-merged ]]; then
            keep "$d" "aa-$name" eval-aa.partial.json
            echo "== parked the unfinished AutoAttack evaluation of $name"
        fi
        if [[ $(state_of "$name") == finished ]]; then
            # trained but not registered yet (its evaluation did not end): keep its best weights,
            # so that the next chain evaluates and registers it instead of training it again
            [[ -f $d/registered || ! -f $d/best.pt ]] && continue
            if [[ $name == lr-* || $name == gamma-kdiga-* ]]; then   # a pilot: its record is its result
                keep "$d" "$name" config.json status.json metrics.jsonl train-seconds
                echo "== parked the record of the finished pilot $name"
                continue
            fi
            keep "$d" "$name" $FINISHED_FILES
            echo "== parked $name (trained, not registered yet)"
            continue
        fi
        if [[ $(state_of "$name") == failed && ! -f $d/registered ]]; then
            # a failed run (e.g. a diverged pilot): its record, so that the next chain knows
            keep "$d" "$name" config.json status.json metrics.jsonl train-seconds
            echo "== parked the record of the failed run $name"
            continue
        fi
        [[ -f $d/last.pt ]] || continue
        keep "$d" "$name" $PARKED_FILES
        echo "== parked $name at step $($PY -c "import json; print(json.load(open('$d/status.json')).get('step'))")"
    done
    # the README shows what this session's chain registered (commit it with zoo-wip/)
    if [[ -f tools/readme_zoo.py ]]; then
        $PY tools/readme_zoo.py || echo "== README.md's retrained-zoo block was not rewritten" >&2
    fi
}

unpark() {   # restore parked runs that this checkout does not have yet
    local w name
    [[ -d $WIP ]] || return 0
    for w in "$WIP"/*/; do
        [[ -d $w ]] || continue   # an empty zoo-wip/: the pattern stays literal
        name=$(basename "$w")
        if [[ $name == aa-* ]]; then   # an AutoAttack evaluation's results so far
            name=${name#aa-}
            [[ -f $RUNS/$name/eval-aa.partial.json ]] && continue
            mkdir -p "$RUNS/$name" && cp "$w/eval-aa.partial.json" "$RUNS/$name/"
            echo "== restored the AutoAttack evaluation of $name so far from $WIP"
            continue
        fi
        [[ -d $RUNS/$name ]] && continue
        mkdir -p "$RUNS/$name" && cp "$w"* "$RUNS/$name/"
        echo "== restored $name from $WIP"
    done
}

# parking: `park` ran while this chain was running: start no new training or evaluation
parking() {
    [[ -f $RUNS/PARKING ]] && { echo "== parked: stopping before the next piece of work" >&2; exit 3; }
    return 0
}

# descendants PID...: those processes and every process below them
descendants() {
    local p
    for p in "$@"; do echo "$p"; descendants $(ps -o pid= --ppid "$p" 2>/dev/null); done
}

# pause / resume (see the top). The paused intervals are appended to $PAUSES (seconds, one per
# line); run_trainer subtracts those that end while its trainer runs. $RUNS/PAUSED holds when the
# pause began and the processes it stopped: resume continues exactly those (also when the chain
# itself has died meanwhile, which would leave its trainer stopped for good).
PAUSES=$RUNS/paused-seconds
paused_total() { [[ -f $PAUSES ]] && awk '{ s += $1 } END { print s + 0 }' "$PAUSES" || echo 0; }
pause() {
    [[ -f $RUNS/PAUSED ]] && { echo "== pause: paused already, since $(date -d @"$(head -1 "$RUNS/PAUSED")" +%T)"; return 0; }
    local pids; pids=$(chains)
    [[ -n $pids ]] || { echo "== pause: no chain runs in this checkout" >&2; exit 1; }
    local since stopped= now
    since=$(date +%s)
    # the chain first, so that it starts nothing meanwhile; then everything below it, again until
    # no new process appears (one forked between a listing and its stop); a process that has
    # ended meanwhile (a short-lived subshell) is no error
    kill -STOP $pids 2>/dev/null || true
    for _ in 1 2 3 4 5; do
        now=$(descendants $pids | sort -un)
        [[ $now == "$stopped" ]] && break
        stopped=$now
        kill -STOP $stopped 2>/dev/null || true
    done
    printf '%s\n%s\n' "$since" "$(echo $stopped)" > "$RUNS/PAUSED"
    echo "== paused the chain ($(echo "$stopped" | wc -l) processes); \`tools/train_zoo.sh resume\` lets it go on"
}
resume() {
    [[ -f $RUNS/PAUSED ]] || { echo "== resume: the chain is not paused"; return 0; }
    local since stopped
    since=$(head -1 "$RUNS/PAUSED")
    stopped=$(sed -n 2p "$RUNS/PAUSED")
    # recorded before the trainer can go on (and end, and count its seconds)
    echo "$(( $(date +%s) - since ))" >> "$PAUSES"
    rm -f "$RUNS/PAUSED"
    [[ -z $stopped ]] || kill -CONT $stopped 2>/dev/null || true
    echo "== resumed the chain after $(( $(date +%s) - since )) s"
}

# ended NAME: go on if the run finished; exit 3 if it was stopped (park, Ctrl-C: the chain must
# stop too), 1 if it failed (diverged, crashed)
ended() {
    local s; s=$(state_of "$1")
    [[ $s == finished ]] && return 0
    echo "== $1 did not finish: $s" >&2
    [[ $s == stopped ]] && exit 3
    exit 1
}

# run_trainer NAME STATE ARGS...: train NAME afresh with ARGS (state none) or resume it; its
# seconds recorded; a trainer killed by a signal stops the chain (the caller reads the run's state)
run_trainer() {
    local name=$1 state=$2 p0 t0 rc=0; shift 2
    p0=$(paused_total)   # before t0: a pause that ends between the two is not counted as training
    t0=$SECONDS
    parking
    if [[ $state == none ]]; then
        nice -n 5 $PY -m ciard train $DATA "$@" --test-size 0 --checkpoint-every 100 --no-progress --out-dir $RUNS --name "$name" || rc=$?
    else
        nice -n 5 $PY -m ciard train --resume "$RUNS/$name" --no-progress || rc=$?
    fi
    # the machine too: a run resumed across sessions may change CPU (fp32-only / bf16), and so precision
    # less the seconds the chain was paused meanwhile (see pause)
    [[ -d $RUNS/$name ]] && echo "$((SECONDS - t0 - $(paused_total) + p0)) $HARDWARE" >> "$RUNS/$name/train-seconds"
    (( rc < 128 )) || exit "$rc"
}

# same_clean_teacher NAME: a run begun earlier (to be resumed, or registered under this chain's
# command) names the clean teacher this chain uses; one begun with another (e.g. before CLEAN
# changed) stops the step instead of being resumed or registered as if it had not
# same_lr NAME LR: a run begun at another lr (a rule changed since) is neither resumed, nor
# counted as a pilot, nor registered under a command that names the new one
same_lr() {
    local f="$RUNS/$1/config.json" got
    [[ -f $f && -n $2 ]] || return 0
    got=$($PY -c "import json,sys; print(float(json.load(open(sys.argv[1]))['optim']['lr']))" "$f" 2>/dev/null) || return 0
    $PY -c "import sys; sys.exit(float(sys.argv[1]) != float(sys.argv[2]))" "$got" "$2" && return 0
    echo "== $1 was begun at lr $got, not $2: move $RUNS/$1 aside to train it again" >&2
    exit 1
}

same_clean_teacher() {
    local f="$RUNS/$1/config.json" got
    [[ -f $f ]] || return 0
    got=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['model'].get('clean_teacher') or '')" "$f" 2>/dev/null) || return 0
    [[ -z $got || $got == "zoo:$CLEAN" ]] && return 0
    echo "== $1 was begun with clean teacher $got, not zoo:$CLEAN: move $RUNS/$1 aside to train it again" >&2
    exit 1
}

# trained NAME: "SECONDS s on MACHINE(S)", NAME's training time and hardware as its manifest entry has them
trained() {
    $PY -c "import json,sys; e=next(e for e in json.load(open('checkpoints/manifest.json'))['entries'] \
        if e['name'] == sys.argv[1]); print(f\"{e['train_seconds'] or 0:.0f}s on {e['hardware']}\")" "cifar10-$1"
}

# train NAME ROLE NOTES ARGS...: train (or resume), evaluate on the full test set, register
train() {
    local name=$1 role=$2 notes=$3; shift 3
    local cmd="python -m ciard train $DATA $* --test-size 0 --checkpoint-every 100 --no-progress --out-dir $RUNS --name $name"
    if registered "cifar10-$name" "$cmd"; then
        echo "== $name: registered already"
        commit_entry "cifar10-$name" "Zoo: cifar10-$name ($role)"
        unpark_done "$name"
        return
    fi
    local state; state=$(state_of "$name")
    [[ " $* " == *" --clean-teacher "* && $state != none ]] && same_clean_teacher "$name"
    local a prev= lr=
    for a in "$@"; do [[ $prev == --lr ]] && lr=$a; prev=$a; done
    [[ $state != none ]] && same_lr "$name" "$lr"
    echo "== $name ($state): $cmd"
    if [[ $state != finished ]]; then
        [[ $state == none ]] && rm -rf "${RUNS:?}/$name"
        run_trainer "$name" "$state" "$@"
        ended "$name"
    fi
    parking
    local tlog=(); [[ -f $RUNS/$name/train-seconds ]] && tlog=(--train-log "$RUNS/$name/train-seconds")
    local ecmd="python -m ciard eval --checkpoint zoo:cifar10-$name $DATA --n 0 --json"   # same weights as $RUNS/$name
    # --partial: each attack's result, and each batch of the attack under way, is kept as it ends,
    # so a session that ends mid-evaluation (about 1.5 h for an airbench94 teacher here) loses at
    # most one batch
    nice -n 5 $PY -m ciard eval --checkpoint "$RUNS/$name" $DATA --n 0 --partial "$RUNS/$name/eval-full.partial.json" \
        --json > "$RUNS/$name/eval-full.json"
    parking
    $PY -m ciard zoo add --name "cifar10-$name" --checkpoint "$RUNS/$name" --role "$role" --dataset cifar10 \
        --train-command "$cmd" "${tlog[@]}" \
        --eval-json "$RUNS/$name/eval-full.json" --eval-command "$ecmd" --notes "$notes $NOTE_DATA" > /dev/null
    touch "$RUNS/$name/registered"    # park keeps finished runs only until this
    local how; how=$(trained "$name")
    commit_entry "cifar10-$name" "Zoo: cifar10-$name ($role), $how"
    unpark_done "$name"
    echo "== $name: trained in $how, registered as cifar10-$name"
}

# pilot NAME METHOD LR [ARGS...]: the shortened budget (10,000 training images, 2 epochs),
# validation only; resumable
pilot() {
    local name=$1 method=$2 lr=$3; shift 3
    local state; state=$(state_of "$name")
    [[ $state != none ]] && same_clean_teacher "$name"   # a finished one too: the rule would count it
    [[ $state != none ]] && same_lr "$name" "$lr"
    [[ $state == finished ]] && { echo "== $name: done already"; return; }
    if [[ $state == failed && $(error_of "$name") == *diverged* ]]; then
        echo "== $name diverged before: left out of the choice" >&2
        return
    fi
    echo "== $name ($state)"
    # a run directory without a status (a trainer killed while it loaded) is started afresh, as
    # train() does; otherwise the trainer would open NAME-2 and this pilot would never end
    [[ $state == none ]] && rm -rf "${RUNS:?}/$name"
    run_trainer "$name" "$state" --method "$method" --lr "$lr" $STUDENT "$@" --epochs 2 --train-subset 10000
    excluded_if_failed "$name"
}

# excluded_if_failed NAME: a pilot that failed (e.g. diverged at a large lr or gamma) is left out
# of the choice (the choosers read finished pilots only) instead of failing the step; a stopped
# one stops the chain
excluded_if_failed() {
    local s; s=$(state_of "$1")
    if [[ $s == failed && $(error_of "$1") == *diverged* ]]; then
        echo "== $1 $(error_of "$1"): left out of the choice" >&2
        return 0
    fi
    ended "$1"   # finished: go on; stopped: the chain stops; failed otherwise (a crash): the step fails
}

error_of() {
    $PY -c "import json,sys; print(json.load(open(sys.argv[1])).get('error') or 'no reason recorded')" "$RUNS/$1/status.json" 2>/dev/null || echo "no status"
}

# unpark_done NAME: the parked copy of a run is not needed any more (registered, or evaluated)
unpark_done() {
    [[ -d $RUNS/$1 ]] && touch "$RUNS/$1/registered"   # park leaves it alone from now on
    [[ -d $WIP/$1 ]] || return 0
    if git ls-files --error-unmatch "$WIP/$1" > /dev/null 2>&1; then
        git rm -rqf "$WIP/$1" && git commit -qm "Zoo: $1 landed; its parked copy is not needed any more" -- "$WIP/$1" || true
    fi
    rm -rf "${WIP:?}/$1"
    rmdir "$WIP" 2>/dev/null || true
}

# aa_done NAME COMMAND: the zoo entry already holds that evaluation (its `zoo merge-eval`)
aa_done() {
    $PY -c "import json,sys; m=json.load(open('checkpoints/manifest.json')); \
e=next((e for e in m['entries'] if e['name']==sys.argv[1]), {}); \
sys.exit(0 if any(x.get('command')==sys.argv[2] for x in e.get('evaluation',{}).get('extra',[])) else 1)" "$1" "$2" 2>/dev/null
}

# aa NAME SOURCE: AutoAttack, the white-box PGD/CW attacks and their transfer twins (crafted on SOURCE) on 1,000 test images
aa() {
    local name=$1 source=$2
    local ecmd="python -m ciard eval --checkpoint zoo:cifar10-$name $DATA --n 1000 --attacks clean,pgd_sat,pgd_trades,cw,autoattack,bb_pgd_trades,bb_cw --source zoo:$source --json"
    # done already: in the manifest (a fresh checkout has no runs/)
    if aa_done "cifar10-$name" "$ecmd"; then
        echo "== aa $name: done already"
        [[ -d $RUNS/$name ]] && touch "$RUNS/$name/aa-merged"
        git commit -qm "Zoo: AutoAttack and transfer attacks for cifar10-$name" -- checkpoints/manifest.json > /dev/null 2>&1 || true
        unpark_done "aa-$name"
        return
    fi
    # a student of this chain names the new teachers in its command; a first-zoo entry of the
    # same name (its retraining failed) does not, and is not evaluated again
    [[ $name == *airbench94 ]] || $PY -c "import json,sys; m=json.load(open('checkpoints/manifest.json')); \
e=next((e for e in m['entries'] if e['name']==sys.argv[1]), {}); sys.exit(0 if sys.argv[2] in e.get('command', '') else 1)" \
        "cifar10-$name" "zoo:$ROBUST" || { echo "== aa $name: cifar10-$name is not this chain's entry (its training step failed?)" >&2; exit 1; }
    parking
    echo "== $name: $ecmd"
    mkdir -p "$RUNS/$name"
    nice -n 5 $PY -m ciard eval --checkpoint "zoo:cifar10-$name" $DATA --n 1000 \
        --attacks clean,pgd_sat,pgd_trades,cw,autoattack,bb_pgd_trades,bb_cw --source "zoo:$source" \
        --partial "$RUNS/$name/eval-aa.partial.json" --json > "$RUNS/$name/eval-aa.json.tmp"
    mv "$RUNS/$name/eval-aa.json.tmp" "$RUNS/$name/eval-aa.json"
    parking
    # a teacher whose report fails the gradient-masking checks stops the chain here, before any
    # student is distilled from it (its report is kept in $RUNS/$name/eval-aa.json, not merged)
    if [[ $name == *airbench94 ]] && ! $PY -c "import json,sys; w=json.load(open(sys.argv[1]))['warnings']; \
print(*w, sep='\n', file=sys.stderr); sys.exit(1 if w else 0)" "$RUNS/$name/eval-aa.json"; then
        echo "== aa $name: the teacher's report fails the gradient-masking checks (above); not merged" >&2
        exit 1
    fi
    $PY -m ciard zoo merge-eval --name "cifar10-$name" --eval-json "$RUNS/$name/eval-aa.json" --eval-command "$ecmd"
    touch "$RUNS/$name/aa-merged"    # park keeps the partial results only until this
    git commit -qm "Zoo: AutoAttack and transfer attacks for cifar10-$name" -- checkpoints/manifest.json || true
    unpark_done "aa-$name"
}

CHAIN="clean robust aa-robust-airbench94 aa-clean-airbench94 lr ciard defaults nopush noitt mtard rslad ard pgdat \
aa-ciard-resnet20 aa-nopush-resnet20 aa-noitt-resnet20 aa-mtard-resnet20 aa-rslad-resnet20 aa-ard-resnet20 aa-pgdat-resnet20 \
lr-newer dgad adaad kdiga-gamma kdiga peeraid aa-dgad-resnet20 aa-adaad-resnet20 aa-kdiga-resnet20 aa-peeraid-resnet20"

# rule_committed FILE: a pilot step's choice is in git already (it is not made again)
rule_committed() { git cat-file -e "HEAD:$1" 2>/dev/null; }

do_step() {
    local step=$1 lr= gamma=
    case $step in   # the steps that need the lr rule: without it they fail here instead of starting
        ciard|nopush|noitt|mtard|rslad|ard) lr=$(student_lr) ;;
        dgad|adaad|kdiga|peeraid) lr=$(newer_lr "$step") ;;
        kdiga-gamma) lr=$(newer_lr kdiga) ;;
    esac
    [[ $step == kdiga ]] && gamma=$(kdiga_gamma)
    case $step in
        clean)  train clean-airbench94 clean_teacher "Clean teacher: airbench94-style net, natural training, 16 epochs, batch 512, Nesterov SGD, triangle lr (peak 0.4), label smoothing 0.2." \
                    --method natural --student airbench94 --epochs 16 --batch-size 512 --lr 0.4 --lr-schedule triangle \
                    --nesterov --weight-decay 5e-4 --label-smoothing 0.2 --eval-size 1000 --eval-pgd-steps 0 ;;
        robust) train robust-airbench94 robust_teacher "Robust teacher: airbench94-style net, FGSM with random start (fast AT, step 1.25 eps), 15 epochs, batch 256, triangle lr (peak 0.2); best epoch by validation (clean + PGD-10) / 2, which also guards against catastrophic overfitting." \
                    --method fgsm_at --student airbench94 --epochs 15 --batch-size 256 --lr 0.2 --lr-schedule triangle \
                    --nesterov --weight-decay 5e-4 --eval-size 1000 --eval-pgd-steps 10 ;;
        lr)     if ! rule_committed $LR_RULE; then
                    for lr in $LR_CANDIDATES; do for m in $LR_METHODS; do pilot "lr-$m-$lr" $m "$lr"; done; done
                    $PY tools/choose_lr.py $RUNS
                    git add $LR_RULE && git commit -qm "Zoo: the student lr rule, chosen on the validation split" -- $LR_RULE
                fi
                for lr in $LR_CANDIDATES; do for m in $LR_METHODS; do unpark_done "lr-$m-$lr"; done; done ;;
        lr-newer) if ! rule_committed $NEWER_LR_RULE; then
                    for m in $NEWER_LR_METHODS; do for lr in $LR_CANDIDATES; do pilot "lr-$m-$lr" $m "$lr" --precision fp32; done; done
                    $PY tools/choose_lr.py --newer $RUNS
                    git add $NEWER_LR_RULE && git commit -qm "Zoo: the newer baselines' lrs, chosen on the validation split" -- $NEWER_LR_RULE
                fi
                for m in $NEWER_LR_METHODS; do for lr in $LR_CANDIDATES; do unpark_done "lr-$m-$lr"; done; done ;;
        ciard)  train ciard-resnet20 student "CIARD (push loss and ITT on)." --method ciard --lr "$lr" $STUDENT_FP32 ;;
        nopush) train nopush-resnet20 student "CIARD without the push loss (lambda 0)." --method ciard --push-weight 0 --lr "$lr" $STUDENT_FP32 ;;
        noitt)  train noitt-resnet20 student "CIARD without ITT (robust teacher frozen)." --method ciard --no-itt --lr "$lr" $STUDENT_FP32 ;;
        mtard)  train mtard-resnet20 student "B-MTARD: two teachers, adaptive weights and temperatures, no push, no ITT." --method mtard --lr "$lr" $STUDENT_FP32 ;;
        rslad)  train rslad-resnet20 student "RSLAD: robust teacher's soft labels." --method rslad --lr "$lr" $STUDENT_FP32 ;;
        ard)    train ard-resnet20 student "ARD: KD from the robust teacher (T 30)." --method ard --lr "$lr" $STUDENT_FP32 ;;
        defaults) $PY -c "import json,sys; m=json.load(open('checkpoints/manifest.json')); \
e=next((e for e in m['entries'] if e['name']=='cifar10-ciard-resnet20'), {}); \
sys.exit(0 if 'zoo:$ROBUST' in e.get('command', '') else 1)" \
                    || { echo "== defaults: the CIARD student distilled from the new teachers is not in the zoo yet" >&2; exit 1; }
                $PY -m ciard zoo default --name $CLEAN
                $PY -m ciard zoo default --name $ROBUST
                git commit -qm "Zoo: $CLEAN and $ROBUST are the default teachers ('auto'), with the CIARD student distilled from them" \
                    -- checkpoints/manifest.json || true ;;
        pgdat)  train pgdat-resnet20 student "PGD-AT (Madry), no teacher: same data, epochs and attack; its standard lr 0.1." --method pgd_at --lr 0.1 $STUDENT_FP32 ;;
        dgad)   train dgad-resnet20 student "DGAD: robust teacher, clean/adversarial partition by the teacher's mistakes, label swapping, consistency term (beta 1); attack through student and teacher." --method dgad --lr "$lr" $STUDENT_FP32 ;;
        adaad)  train adaad-resnet20 student "AdaAD: KL(T(x')||S(x')) with x' maximising it through both networks (alpha 1)." --method adaad --lr "$lr" $STUDENT_FP32 ;;
        kdiga-gamma) if ! rule_committed $GAMMA_RULE; then
                    for g in $GAMMA_CANDIDATES; do pilot "gamma-kdiga-$g" kdiga "$lr" --kdiga-gamma "$g" --precision fp32; done
                    $PY tools/choose_kdiga_gamma.py $RUNS
                    git add $GAMMA_RULE && git commit -qm "Zoo: KDIGA's alignment weight, chosen on the validation split" -- $GAMMA_RULE
                fi
                for g in $GAMMA_CANDIDATES; do unpark_done "gamma-kdiga-$g"; done ;;
        kdiga)  train kdiga-resnet20 student "KDIGA: KD on clean inputs with input-gradient alignment, as its first author's script (alpha 0.5, T 1: the script's defaults; gamma chosen on the validation split, see checkpoints/zoo-kdiga-gamma.json); no attack in training." --method kdiga --kdiga-gamma "$gamma" --lr "$lr" $STUDENT_FP32 ;;
        peeraid) train peeraid-resnet20 student "PeerAiD: a ResNet-20 peer trained jointly from random weights on the student's adversarial examples, no pretrained teacher; no SWA." --method peeraid --lr "$lr" $STUDENT_FP32 ;;
        aa-robust-airbench94) aa robust-airbench94 cifar10-clean-airbench94 ;;   # its own transfer would be white-box (the source its report was made with)
        aa-*)   aa "${step#aa-}" $ROBUST ;;
        *) echo "unknown step '$step'" >&2; exit 2 ;;
    esac
}

steps=("$@")
[[ ${steps[*]} == park ]] && { park; exit 0; }
[[ ${steps[*]} == unpark ]] && { unpark; exit 0; }
[[ ${steps[*]} == pause ]] && { pause; exit 0; }
[[ ${steps[*]} == resume ]] && { resume; exit 0; }
[[ ${steps[*]} == chain ]] && read -r -a steps <<< "$CHAIN"
[[ ${#steps[@]} -gt 0 ]] || { echo "usage: tools/train_zoo.sh chain | park | unpark | pause | resume | STEP... (steps: $CHAIN)" >&2; exit 2; }
for step in "${steps[@]}"; do   # a typo must not start a chain that then skips it (nor restore anything)
    [[ " $CHAIN " == *" $step "* ]] || { echo "unknown step '$step' (steps: $CHAIN)" >&2; exit 2; }
done
HARDWARE=$($PY -c 'from ciard.zoo import hardware; print(hardware())')
unpark
trap 'exit 130' INT TERM
rm -f "$RUNS/PARKING" "$RUNS/PAUSED"   # a new chain: the last park (or pause) is over
failed=()
for step in "${steps[@]}"; do
    # a subshell, so that a failing step ends only itself; not in an `&&` or `if` (bash ignores
    # set -e there, also inside the subshell), but as a plain command with -e off in this shell
    set +e
    ( set -e; do_step "$step" )
    rc=$?
    set -e
    [[ $rc -eq 0 ]] && continue
    # stopped (park, Ctrl-C: exit 3) or killed by a signal: the chain stops with it
    [[ $rc -eq 3 || $rc -ge 128 ]] && { echo "== $step stopped; the chain stops (run it again to resume)" >&2; exit "$rc"; }
    case $step in   # every later step needs the teachers (checked by their AutoAttack) and the lr rule
        clean|robust|aa-robust-airbench94|aa-clean-airbench94|lr|lr-newer) echo "== $step failed: the steps after it need it; stopping" >&2; exit 1 ;;
    esac
    # a student (e.g. one that diverged) or its attack step: the other students do not need it
    echo "== $step failed; going on with the steps that do not need it" >&2
    failed+=("$step")
done
[[ ${#failed[@]} -eq 0 ]] || { echo "== failed steps: ${failed[*]} (see their runs under $RUNS)" >&2; exit 1; }
