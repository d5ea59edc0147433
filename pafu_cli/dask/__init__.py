"""pafu on Dask: filters on ``dask.array`` arrays larger than memory
(:mod:`pafu_cli.dask.arrays`) and batches of files on a ``dask.distributed``
cluster (:mod:`pafu_cli.dask.cluster`). Needs the extra: ``pip install 'pafu[dask]'``."""

from pafu_cli.dask.arrays import demosaick, guided_upsample, quantise, upscale

__all__ = ["upscale", "demosaick", "guided_upsample", "quantise"]
