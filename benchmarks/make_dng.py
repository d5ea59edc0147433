"""Write a Bayer mosaic as a minimal 16-bit DNG that LibRaw reads (for benchmarks).

Black 0, white 65535, unit white balance and ColorMatrix1 = XYZ->sRGB, so that
LibRaw's camera matrix is the identity (the setting of ../shared/ANCHORS.md).
``benchmarks/speed.py`` imports :func:`write_dng`; from the command line:

    python benchmarks/make_dng.py MOSAIC.npy OUT.dng [--pattern RGGB]

MOSAIC.npy holds a 2-D array of 16-bit samples (``numpy.save``).
"""

import argparse
import sys

import numpy as np


def xyz_to_srgb():
    m = np.array(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
    )
    return np.linalg.inv(m)


def write_dng(path, cfa16: np.ndarray, pattern: str = "RGGB") -> None:
    import tifffile

    cfa16 = np.ascontiguousarray(cfa16, np.uint16)
    h, w = cfa16.shape
    colours = {"R": 0, "G": 1, "B": 2}
    cm = xyz_to_srgb()
    den = 10000
    srat = [v for x in cm.ravel() for v in (int(round(x * den)), den)]
    tags = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, tuple(colours[c] for c in pattern), True),  # CFAPattern
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "pafu benchmark", True),  # UniqueCameraModel
        (50714, "H", 1, (0,), True),  # BlackLevel
        (50717, "H", 1, (65535,), True),  # WhiteLevel
        (50721, 10, 9, tuple(srat), True),  # ColorMatrix1 (SRATIONAL)
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral (RATIONAL)
        (50778, "H", 1, (21,), True),  # CalibrationIlluminant1 = D65
    ]
    tifffile.imwrite(
        path, cfa16, photometric=32803, compression=None, extratags=tags, metadata=None, subfiletype=0
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Write a 2-D uint16 mosaic (.npy) as a minimal 16-bit DNG that LibRaw reads "
        "(black 0, white 65535, unit white balance, identity camera matrix)."
    )
    ap.add_argument("mosaic", help="a .npy file holding a 2-D array of 16-bit samples")
    ap.add_argument("out", help="the DNG file to write")
    ap.add_argument("--pattern", default="RGGB", choices=["RGGB", "BGGR", "GRBG", "GBRG"])
    a = ap.parse_args(argv)
    try:
        cfa = np.load(a.mosaic, allow_pickle=False)
    except (OSError, ValueError) as e:
        print(f"error: {a.mosaic}: not a readable .npy file ({e})", file=sys.stderr)
        return 1
    if cfa.ndim != 2 or cfa.dtype.kind not in "ui" or cfa.min() < 0 or cfa.max() > 65535:
        print(
            f"error: {a.mosaic}: need a 2-D integer array in 0..65535, got {cfa.dtype} {cfa.shape}",
            file=sys.stderr,
        )
        return 1
    write_dng(a.out, cfa, a.pattern)
    return 0


if __name__ == "__main__":
    sys.exit(main())
