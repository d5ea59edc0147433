#!/usr/bin/env bash
# Ablation of PAFU design choices on x2 super-resolution (validation split of T91 + BSD200).
# Each run: `pafu train` with one change from the base; results: benchmarks/ablation_table.py.
# Two lanes on two cores: `benchmarks/ablation.sh & benchmarks/ablation.sh`.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/ablation}
mkdir -p "$OUT"
D="--data ../shared/data/T91 --data ../shared/data/BSD200"
BASE="--task upscale -s 2 --iters ${ITERS:-2000} --seed 0 --threads ${THREADS:-1}"
# Several lanes may run this script at once: a run is claimed atomically by mkdir.
run() {
  name=$1; shift
  [ -f "$OUT/$name.npz" ] && return
  mkdir "$OUT/$name.claim" 2>/dev/null || return
  pafu train $BASE $D --out "$OUT/$name.npz" "$@" > "$OUT/$name.log" 2>&1
}
run base
run n8 --kernels 8
run n32 --kernels 32
run n64 --kernels 64 --width 32
run k7 --kernel-sizes 7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7
run k3 --kernel-sizes 3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3
run mixed57 --kernel-sizes 5,5,5,5,5,5,5,5,7,7,7,7,7,7,7,7
run w8 --width 8
run w32 --width 32
run depth2 --depth 2
run depth4 --depth 4
run nodecor --decorrelation 0
run decor1e-3 --decorrelation 1e-3
run noalt --no-alternate
run tau-const1 --tau 1.0 1.0
run tau-2-0.05 --tau 2.0 0.05
run init-random --init random
run norefit --no-refit
