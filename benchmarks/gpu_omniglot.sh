#!/usr/bin/env bash
# One device run (a lent GPU machine, see DEVELOPERS.md): TRM head timings at 84×84 and the
# Omniglot protocol with 60-way training for protonet, cosine and trm at 5/20-way, 1/5-shot.
# Expects .device/whl/*.whl (learn2learn built for the device's Python, gym, gym_notices,
# fewshot-bench itself) and .device/omniglot/*.zip carried along; writes into $OUT.
# Usage there: EPISODES=6000 bash benchmarks/gpu_omniglot.sh
set -uo pipefail
EPISODES=${EPISODES:-6000}
LIMIT=${LIMIT:-380}
root=$(pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 FEWSHOT_BENCH_CACHE=/tmp/cache
cd /tmp
[ -n "${SKIP_HEAD:-}" ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
[ -n "${SKIP_HEAD:-}" ] || python3 - <<'PY' 2>&1 | tee "$OUT/trm_head_gpu.txt"
import time, torch
from bench.methods.trm import TaskRelatedMetric
print("way,shot,query,hw,ms,peak_mib,max_attn_mib")
for way in (5, 20):
    for shot in (1, 5):
        for hw in (49, 441):
            side = int(hw ** 0.5)
            model = TaskRelatedMetric(TaskRelatedMetric.Config(), 3).cuda().eval()
            support = torch.randn(way * shot, 64, side, side, device="cuda")
            query = torch.randn(way * 15, 64, side, side, device="cuda")
            labels = torch.arange(way, device="cuda").repeat_interleave(shot)
            with torch.no_grad():
                model.head(support, labels, query, way)
                torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                times = []
                for _ in range(5):
                    start = time.perf_counter(); model.head(support, labels, query, way)
                    torch.cuda.synchronize(); times.append(time.perf_counter() - start)
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            print(f"{way},{shot},15,{hw},{1000*sorted(times)[2]:.2f},{peak:.0f},2048")
PY
# A previous, interrupted device run carried back in .device/omniglot-gpu resumes from its
# checkpoint and finished models.
[ -d "$root/.device/omniglot-gpu" ] && cp -r "$root/.device/omniglot-gpu" /tmp/omniglot-gpu
start=$(date +%s)
timeout "$LIMIT" python3 -m bench.cli run --preset omniglot-snell --data-root "$root/.device/omniglot" \
  --train-episodes "$EPISODES" --device cuda --out /tmp/omniglot-gpu 2>&1 | tail -n 60 | tee "$OUT/run.log"
echo "exit ${PIPESTATUS[0]} wall $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"
tar czf "$OUT/omniglot-gpu.tgz" -C /tmp omniglot-gpu
