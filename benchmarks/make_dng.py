"""Write a Bayer mosaic as a minimal 16-bit DNG that LibRaw reads (for benchmarks).

Black 0, white 65535, unit white balance and ColorMatrix1 = XYZ->sRGB, so that
LibRaw's camera matrix is the identity (the setting of ../shared/ANCHORS.md).
"""

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


if __name__ == "__main__":
    write_dng(sys.argv[1], np.load(sys.argv[2]))
