#!/usr/bin/env bash
# Every quality table of docs/results.md and docs/guided.md (and README's results table), one `pafu evaluate` command each.
set -euo pipefail
usage() {
    echo "usage: benchmarks/quality.sh [-h] [DATA]"
    echo
    echo "Print the quality tables of docs/results.md with the standard protocols."
    echo "DATA: the folder holding Set5, Set14, Kodak24, McMaster and depth/"
    echo "(default: \$PAFU_SHARED/data, else ../shared/data next to the repository)."
    echo "About 10 minutes on 2 cores; needs the installed 'pafu' command."
}
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
-*)
    usage >&2
    exit 2
    ;;
esac
if [ "$#" -gt 1 ]; then
    usage >&2
    exit 2
fi
SHARED="${PAFU_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
DATA="${1:-$SHARED/data}"
echo "## Super-resolution, Y-PSNR (dB)"
pafu evaluate upscale --data "$DATA" --baseline
pafu evaluate upscale --data "$DATA" --ensemble
pafu evaluate upscale --data "$DATA" --model upscale_x2_fast -s 2
pafu evaluate upscale --data "$DATA" --model upscale_x3_fast -s 3
pafu evaluate upscale --data "$DATA" --model upscale_x4_fast -s 4
echo "## Super-resolution, --quality high (pafunet), Y-PSNR (dB)"
for s in 2 3 4; do
    pafu evaluate upscale --data "$DATA" --model "upscale_x${s}_high" -s "$s"
done
echo "## Demosaicking, noise-free, CPSNR (dB)"
pafu evaluate demosaick --data "$DATA"
pafu evaluate demosaick --data "$DATA" --model bilinear
pafu evaluate demosaick --data "$DATA" --colours auto
echo "## Joint denoise + demosaick, CPSNR (dB)"
pafu evaluate demosaick --data "$DATA" --denoise auto --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise auto --colours auto --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise on --sigma 0 --sigma 5 --sigma 10
pafu evaluate demosaick --data "$DATA" --denoise on --colours auto --sigma 0 --sigma 5 --sigma 10
for m in demosaick demosaick_high demosaick_vivid demosaick_denoise_s2 demosaick_denoise_s5 demosaick_denoise_s10 \
    demosaick_vivid_denoise_s5 demosaick_vivid_denoise_s10; do
    pafu evaluate demosaick --data "$DATA" --model "$m" --sigma 0 --sigma 5 --sigma 10
done
echo "## Guided upsampling, RMSE (EPE for Sintel)"
for p in bicubic decimation park sintel; do
    pafu evaluate guided-upsample --data "$DATA/depth" --protocol "$p" \
        -m guided_upsample -m jbu -m bicubic -m bilinear
done
