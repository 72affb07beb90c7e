#!/usr/bin/env bash
# The CUDA path, end to end, on one GPU in under 10 minutes (a 2-process NCCL run if 2 GPUs):
#   1. the CUDA tests (tests/test_cuda.py, run as a plain script: no pytest needed);
#   2. `python -m ciard bench --json` on CUDA, in auto precision (bf16 where supported) and fp32;
#   3. one epoch of CIFAR-10 with the paper preset and the shipped CIFAR-10 teachers;
#   4. with 2 or more GPUs: a 2-process NCCL torchrun of one demo epoch.
# Needs only torch and torchvision (no pytest, pandas, scipy, torchattacks, streamlit) and no
# network. Usage, from anywhere:
#   CIFAR10_ARCHIVE=/path/to/cifar10-jpeg.tar.gz tools/gpu_check.sh
# The archive is taken from $CIFAR10_ARCHIVE, else .data/cifar10-jpeg.tar.gz, else
# shared/data/cifar10-jpeg.tar.gz. Settings (environment):
#   PYTHON                   interpreter (default: .venv/bin/python if it runs, else python3)
#   CIARD_GPU_CHECK_SUBSET   training images of the CIFAR-10 epoch (default 10000; 0: all 49,000)
#   CIARD_GPU_CHECK_SECONDS  time budget of the whole script (default 570)
# Outputs (at most 7 files) go to $OUT if set, else runs/gpu-check/: gpu_check.log (every
# stage's output), summary.json (each stage's status and seconds, and the main figures),
# bench.json, bench_fp32.json, paper_1epoch.json, paper_1epoch_metrics.jsonl, torchrun.json.
# Run directories and the dataset cache stay in runs/gpu-check/. Exit status 0 only if every
# stage passed (torchrun counts as passed when skipped for want of a second GPU).
set -u
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=.venv/bin/python
else PY=python3; fi
WORK=runs/gpu-check
OUTDIR=${OUT:-$WORK}
mkdir -p "$WORK" "$OUTDIR"
LOG=$OUTDIR/gpu_check.log
: > "$LOG"
export CIARD_CACHE=$WORK/cache PYTHONUNBUFFERED=1
BUDGET=${CIARD_GPU_CHECK_SECONDS:-570}
SUBSET=${CIARD_GPU_CHECK_SUBSET:-10000}
STAGES=()   # "name status seconds"

say() { echo "$*" | tee -a "$LOG"; }

# run_stage NAME LIMIT STDOUT_FILE CMD...: CMD under a time limit (never past the budget);
# its stdout to STDOUT_FILE (or the log if empty), its stderr to the log.
run_stage() {
    local name=$1 limit=$2 out=$3; shift 3
    local left=$((BUDGET - SECONDS - 5))
    if [ "$left" -lt 20 ]; then
        say "== $name: skipped, the time budget is spent"; STAGES+=("$name no-time 0"); return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit} s): $*"
    local t0=$SECONDS rc
    if [ -n "$out" ]; then timeout -k 10 "$limit" "$@" > "$out" 2>> "$LOG"; rc=$?
    else timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1; rc=$?; fi
    local status=passed
    [ "$rc" -eq 124 ] && status=timed-out
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && status=failed
    say "== $name: $status (exit $rc, $((SECONDS - t0)) s)"
    STAGES+=("$name $status $((SECONDS - t0))")
    return "$rc"
}

# -- the machine -------------------------------------------------------------------------------
say "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), python: $PY"
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | tee -a "$LOG"
GPUS=$("$PY" - <<'EOF' 2>> "$LOG"
import sys, torch, torchvision
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
names = ", ".join(torch.cuda.get_device_name(i) for i in range(n))
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, CUDA {torch.version.cuda}, "
      f"{n} GPU(s): {names or '-'}; bf16: {n > 0 and torch.cuda.is_bf16_supported()}", file=sys.stderr)
print(n)
EOF
)
tail -n 1 "$LOG"
if [ "${GPUS:-0}" -lt 1 ]; then
    say "no CUDA GPU visible to torch: nothing to check"; exit 1
fi

# -- 1. the CUDA tests -------------------------------------------------------------------------
run_stage cuda_tests 150 "" "$PY" tests/test_cuda.py

# -- 2. the benchmark on CUDA ------------------------------------------------------------------
EVAL=()
"$PY" -c "import torchattacks" 2>/dev/null && EVAL=(--eval)   # PGD against torchattacks, if there
run_stage bench 150 "$OUTDIR/bench.json" "$PY" -m ciard bench --device cuda --json \
    --steps 10 --warmup 3 --rounds 3 "${EVAL[@]}"
run_stage bench_fp32 100 "$OUTDIR/bench_fp32.json" "$PY" -m ciard bench --device cuda --json \
    --precision fp32 --no-reference --steps 10 --warmup 3 --rounds 3

# -- 3. one CIFAR-10 epoch of the paper preset -------------------------------------------------
ARCHIVE=${CIFAR10_ARCHIVE:-}
for candidate in .data/cifar10-jpeg.tar.gz shared/data/cifar10-jpeg.tar.gz; do
    [ -z "$ARCHIVE" ] && [ -f "$candidate" ] && ARCHIVE=$candidate
done
if [ -z "$ARCHIVE" ] || [ ! -f "$ARCHIVE" ]; then
    say "== paper_1epoch: missing, no CIFAR-10 archive (set CIFAR10_ARCHIVE or put it in .data/)"
    STAGES+=("paper_1epoch missing 0")
else
    CAP=()
    [ "$SUBSET" != 0 ] && CAP=(--train-subset "$SUBSET")
    rm -rf "$WORK/paper-1epoch"
    run_stage paper_1epoch 200 "$OUTDIR/paper_1epoch.json" "$PY" -m ciard train \
        --preset paper-cifar10 --data-path "$ARCHIVE" \
        --clean-teacher zoo:cifar10-clean-resnet20 --robust-teacher zoo:cifar10-robust-resnet20 \
        --epochs 1 --device cuda "${CAP[@]}" --run-dir "$WORK/paper-1epoch" --no-progress --json
    cp "$WORK/paper-1epoch/metrics.jsonl" "$OUTDIR/paper_1epoch_metrics.jsonl" 2>/dev/null
fi

# -- 4. two processes, NCCL --------------------------------------------------------------------
if [ "$GPUS" -ge 2 ]; then
    rm -rf "$WORK/torchrun"
    run_stage torchrun_nccl 150 "$OUTDIR/torchrun.json" "$PY" -m torch.distributed.run --standalone \
        --nproc-per-node 2 -m ciard train --preset demo --epochs 1 --device cuda \
        --clean-teacher zoo:demo-clean-resnet20 --robust-teacher zoo:demo-robust-resnet20 \
        --run-dir "$WORK/torchrun" --no-progress --json
else
    say "== torchrun_nccl: skipped, 1 GPU"
    STAGES+=("torchrun_nccl skipped-1-gpu 0")
fi

# -- summary -----------------------------------------------------------------------------------
"$PY" - "$OUTDIR" "$WORK" "$SECONDS" "$(printf '%s\n' "${STAGES[@]}")" <<'EOF' | tee -a "$LOG"
import json, sys
from pathlib import Path
out, work, seconds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
stages = {}
for line in sys.argv[4].split("\n"):
    if line.strip():
        name, status, secs = line.split()
        stages[name] = {"status": status, "seconds": int(secs)}

def records(path, kind):
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [r for r in map(json.loads, filter(None, lines)) if r.get("kind") == kind]

def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None

summary = {"seconds": seconds, "stages": stages}
keys = ("device_name", "precision", "compile_attack", "img_per_s", "reference_img_per_s", "speedup",
        "flops_per_image", "gflops_per_s", "peak_gflops_per_s", "fraction_of_peak", "eval_img_per_s",
        "torchattacks_img_per_s", "eval_speedup")
for name in ("bench", "bench_fp32"):
    b = load(f"{name}.json")
    if b:
        summary[name] = {k: b[k] for k in keys if k in b} | {"peak_dtype": b["peak_matmul"]["dtype"]}
paper = load("paper_1epoch.json")
if paper:
    steps = records(work / "paper-1epoch" / "metrics.jsonl", "step")
    summary["paper_1epoch"] = {"final": paper.get("final"), "best": paper.get("best"),
                               "train_img_per_s": steps[-1]["img_per_s"] if steps else None,
                               "seconds": stages.get("paper_1epoch", {}).get("seconds")}
tr = load("torchrun.json")
if tr:
    epochs = records(work / "torchrun" / "metrics.jsonl", "epoch")
    summary["torchrun_nccl"] = {"final": tr.get("final"), "processes": epochs[-1].get("processes") if epochs else None,
                                "rank_divergence": epochs[-1].get("rank_divergence") if epochs else None}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary, indent=1))
ok = all(s["status"] in ("passed", "skipped-1-gpu") for s in stages.values())
print("gpu_check:", "all stages passed" if ok else "NOT all stages passed", f"({seconds} s)")
sys.exit(0 if ok else 1)
EOF
exit "${PIPESTATUS[0]}"
