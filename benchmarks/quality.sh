#!/usr/bin/env bash
# Every quality table of README, one command each (shared data folder as $1, default ../shared/data).
set -euo pipefail
DATA="${1:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
echo "## Super-resolution, Y-PSNR (dB)"
pafu evaluate upscale --data "$DATA" --baseline
pafu evaluate upscale --data "$DATA" --ensemble
echo "## Demosaicking, noise-free, CPSNR (dB)"
pafu evaluate demosaick --data "$DATA"
pafu evaluate demosaick --data "$DATA" --model bilinear
pafu evaluate demosaick --data "$DATA" --colours auto
echo "## Joint denoise + demosaick, CPSNR (dB)"
pafu evaluate demosaick --data "$DATA" --denoise auto --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise auto --colours auto --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise on --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise on --colours auto --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_denoise_s2 --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_denoise_s5 --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_denoise_s10 --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_vivid --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_vivid_denoise_s5 --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick_vivid_denoise_s10 --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --model demosaick --sigma 5 --sigma 10
