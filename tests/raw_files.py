"""Small RAW files made by the tests themselves."""

import numpy as np
import tifffile


def write_dng(path, cfa16, colour_matrix, as_shot_neutral=None):
    """A minimal DNG (RGGB, black 0, white 65535) with or without AsShotNeutral."""
    den = 10000
    srat = [v for x in np.asarray(colour_matrix).ravel() for v in (int(round(x * den)), den)]
    tags = [
        (33421, "H", 2, (2, 2), True),
        (33422, "B", 4, (0, 1, 1, 2), True),
        (50706, "B", 4, (1, 4, 0, 0), True),
        (50708, "s", 0, "pafu test", True),
        (50714, "H", 1, (0,), True),
        (50717, "H", 1, (65535,), True),
        (50721, 10, 9, tuple(srat), True),
        (50778, "H", 1, (21,), True),
    ]
    if as_shot_neutral is not None:
        tags.append((50728, 5, 3, tuple(v for x in as_shot_neutral for v in (int(x * den), den)), True))
    tifffile.imwrite(path, cfa16, photometric=32803, extratags=tags)
