#!/usr/bin/env bash
# The official SPHERE trainer and ours on h1_stand, timed in turns on one machine (docs/learning.md): ROUNDS
# rounds of the official run, then ours, each 99,840 env steps (390 updates of 16 envs x 16 steps) with the same
# hyperparameters and an evaluation at ~50k steps. Needs the official venv (`scripts/official_sphere.py setup`).
#
#   scripts/h1_stand_in_turns.sh            # ROUNDS=2 VENV=~/.cache/sphere-official by default
#
# Writes docs/learning/h1_stand_timing/: official_roundN.json (official_sphere.py's JSON: SB3's log rows, the
# training rate between its first and last rows), ours_roundN/ (config.yaml, metrics.jsonl, summary.json: each
# chunk's steps_per_s, training only) and wall_seconds.tsv (each whole command's wall time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
VENV=${VENV:-$HOME/.cache/sphere-official}
OUT=docs/learning/h1_stand_timing
mkdir -p "$OUT"
printf 'round\ttrainer\twall_seconds\n' > "$OUT/wall_seconds.tsv"

timed() {  # timed ROUND TRAINER COMMAND...: run the command, append its wall time
    local round=$1 trainer=$2 start end
    shift 2
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    printf '%s\t%s\t%s\n' "$round" "$trainer" "$(python -c "print(round($end - $start, 1))")" \
        | tee -a "$OUT/wall_seconds.tsv"
}

for round in $(seq 1 "$ROUNDS"); do
    timed "$round" official python scripts/official_sphere.py run --venv "$VENV" --steps 99840 --num-envs 16 \
        --seed 0 --eval-every 50000 --out "$OUT/official_round$round.json"
    rm -rf "runs/timing/ours_round$round"
    timed "$round" ours purejaxsphere train benchmark=humanoidbench_h1 algo=moe_topk_sphere_gradscale \
        'tasks=[humanoidbench/h1_stand]' physics=cpu num_envs=16 total_timesteps=99840 eval.interval=50000 seeds=1 \
        diagnostics.enabled=false wandb.mode=disabled "run_dir=runs/timing/ours_round$round"
    mkdir -p "$OUT/ours_round$round"
    cp "runs/timing/ours_round$round/"{config.yaml,metrics.jsonl,summary.json} "$OUT/ours_round$round/"
done
