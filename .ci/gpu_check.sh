#!/usr/bin/env bash
# The GPU path end to end, on a machine with an NVIDIA GPU and a CUDA build of torch in .venv:
# evaluations on CUDA in the process sandbox (and in Docker when a CUDA image is built), a short
# campaign on CUDA, and the gpu-marked tests. Prints one PASS/FAIL line per step and exits non-zero
# if any failed. Run with `make gpu-check`; paste its output into the issue that asked for it.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT="${GPU_CHECK_DIR:-$(mktemp -d /tmp/optforge-gpu-check-XXXX)}"
failed=0
step() {  # step NAME COMMAND...: run, keep its log, print one line
    local name=$1; shift
    local started=$SECONDS
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "PASS $name ($((SECONDS - started)) s)"
    else
        echo "FAIL $name ($((SECONDS - started)) s): tail of $OUT/$name.log:"; tail -15 "$OUT/$name.log"
        failed=1
    fi
}

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
$BIN/python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), 'devices', torch.cuda.device_count())"

echo "== checks (logs in $OUT)"
step evaluate-cpu $BIN/optforge evaluate tasks/baselines/optimizers/adam.py --device cpu --json
step evaluate-cuda-process $BIN/optforge evaluate tasks/baselines/optimizers/adam.py --device cuda --json
if $BIN/optforge sandbox check >/dev/null 2>&1; then
    step evaluate-cuda-docker $BIN/optforge evaluate tasks/baselines/optimizers/adam.py \
        --sandbox docker --device cuda --json
else
    echo "SKIP evaluate-cuda-docker: no Docker engine or sandbox image (optforge sandbox build --base nvidia/cuda:...)"
fi
step campaign-cuda $BIN/optforge run --device cuda --start-from adamw,nesterov --budget 3 \
    --dir "$OUT/campaign"
step status $BIN/optforge status "$OUT/campaign"
step gpu-tests $BIN/pytest -m gpu -q -p no:cacheprovider

echo "== scores (tier 1, x tuned AdamW on the same device)"
for name in evaluate-cpu evaluate-cuda-process evaluate-cuda-docker; do
    [ -f "$OUT/$name.log" ] && $BIN/python - "$OUT/$name.log" "$name" <<'PY'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
    print(f"{sys.argv[2]}: score {data.get('score')}, status {data.get('status')}")
except (ValueError, OSError) as exc:
    print(f"{sys.argv[2]}: no JSON result ({exc})")
PY
done
head -20 "$OUT/status.log" 2>/dev/null
exit $failed
