"""Image files: PNG/TIFF/JPEG reading and atomic writing, whole or by rows. The only
module that touches imageio, tifffile and the PNG codec."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from pafu_cli import _runtime
from pafu_cli.errors import InputError, OutputError, PafuError
from pafu_cli.limits import check_pixels, max_pixels

log = logging.getLogger("pafu")

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


WRITE_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg"}


def check_input_file(path) -> None:
    """Refuse, with one line, what cannot be an input file: missing, a folder, not a
    regular file (a FIFO, a device such as /dev/null), or empty."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a device, FIFO or socket); give an image file")
    if st.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _short(e) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _unreadable(path, e) -> InputError:
    if type(e).__name__ == "UnidentifiedImageError":  # Pillow's message names a buffer object
        return InputError(f"{path}: not a PNG, TIFF or JPEG image (or a damaged one)")
    return InputError(f"{path}: not a readable image ({_short(e)})")


def _read_bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _tiff_header(tif, path, limit: bool = True) -> tuple:
    """Shape of the first series of an open TIFF, after the checks its header allows
    (the pixel limit unless ``limit`` is False: for a file read in parts)."""
    page = tif.pages[0]
    if int(page.photometric) == 5:  # SEPARATED: CMYK or other inks
        raise InputError(f"{path}: CMYK TIFF; pafu reads RGB or grey images: convert it to RGB first")
    shape = tuple(int(s) for s in tif.series[0].shape)
    if len(shape) >= 2 and limit:
        h, w = (shape[-3], shape[-2]) if len(shape) >= 3 and shape[-1] <= 4 else shape[-2:]
        check_pixels(path, h, w)
    return shape


def _pillow_header(source, path):
    """(shape, mode) of a PNG/JPEG from its header, through Pillow (nothing decoded);
    ``source`` is the file's bytes or its path (then only the header is read)."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        w, h = im.size
        check_pixels(path, h, w)
        bands = len(im.getbands())
        mode = im.mode
    if mode == "CMYK":
        raise InputError(f"{path}: CMYK JPEG; pafu reads RGB or grey images: convert it to RGB first")
    if mode == "P":  # a palette: decoded to RGB(A)
        bands = 3
    return ((h, w) if bands == 1 else (h, w, bands)), mode


def image_shape(path) -> tuple:
    """Shape of an image file from its header (nothing is decoded), after refusing
    CMYK files and images that declare more than :func:`pafu_cli.limits.max_pixels`."""
    from pafu_cli.io import _png

    check_input_file(path)
    try:
        if Path(path).suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                return _tiff_header(tif, path)
        with open(path, "rb") as fh:
            head = _png.header(fh.read(64))  # the IHDR lies in the first 33 bytes
        if head is not None:
            check_pixels(path, head[1], head[0])
        return _pillow_header(str(path), path)[0]
    except PafuError:
        raise
    except Exception as e:  # backends raise OSError, ValueError, SyntaxError, ...
        raise _unreadable(path, e) from None


@contextlib.contextmanager
def open_image_lazy(path):
    """A context giving the image as a dask array, read when its chunks are: a
    TIFF chunk by chunk as stored (strips or tiles, through tifffile's zarr view;
    never whole in memory, so the pixel limit does not apply; the file stays open
    until the context ends), PNG and JPEG decoded whole by :func:`read_image`
    (they cannot be read in parts). Needs ``pafu[dask]``."""
    import dask.array as da

    path = str(path)
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        yield da.from_array(read_image(path), chunks=-1)
        return
    check_input_file(path)
    store = None
    try:
        import tifffile
        import zarr

        with tifffile.TiffFile(path) as tif:
            shape = _tiff_header(tif, path, limit=False)
            dtype = tif.series[0].dtype
        if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
            raise InputError(f"{path}: unsupported image layout {shape}; expected (H, W) or (H, W, 1..4)")
        if dtype not in (np.uint8, np.uint16) and dtype.kind != "f":
            raise InputError(
                f"{path}: unsupported sample type {dtype}; use 8- or 16-bit integers or 32-bit float"
            )
        store = tifffile.imread(path, aszarr=True)
        arr = da.from_zarr(zarr.open(store, mode="r"))
        if dtype.kind == "f":
            arr = arr.astype(np.float32)
    except PafuError:
        if store is not None:
            store.close()
        raise
    except Exception as e:  # backends raise OSError, ValueError, KeyError, ...
        if store is not None:
            store.close()
        raise _unreadable(path, e) from None
    try:
        yield arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    finally:
        store.close()


def read_image(path) -> np.ndarray:
    """Read a PNG, TIFF or JPEG image as stored: (H, W), (H, W, C) with C in 1..4.

    Integer images keep their dtype (uint8 or uint16); float TIFFs become float32.
    The header is checked before anything is decoded (:func:`image_shape`), and
    PNG/JPEG go through Pillow (or pafu's own 16-bit PNG decoder), TIFF through
    tifffile, never through whichever imageio plugin happens to be installed.

    Raises
    ------
    InputError
        Missing, empty, unreadable, damaged, CMYK or multi-page files, images
        beyond the pixel limit, and unsupported dtypes.
    """
    path = str(path)
    check_input_file(path)
    try:
        if Path(path).suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                _tiff_header(tif, path)
                img = tif.asarray()
        else:
            img = _read_other(path)
    except PafuError:
        raise
    except Exception as e:  # backends raise OSError, ValueError, SyntaxError, ...
        raise _unreadable(path, e) from None
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4) or img.size == 0:
        raise InputError(
            f"{path}: unsupported image layout {img.shape}; expected (H, W) or "
            "(H, W, 1..4) (multi-page TIFFs are not supported)"
        )
    if img.dtype == np.uint8 or img.dtype == np.uint16:
        return img
    if img.dtype.kind == "f":
        img = img.astype(np.float32)
        if not np.all(np.isfinite(img)):
            raise InputError(f"{path}: float image contains NaN or Inf values")
        return img
    if img.dtype == bool:
        return img.astype(np.uint8) * np.uint8(255)
    raise InputError(
        f"{path}: unsupported sample type {img.dtype}; use 8- or 16-bit integers or 32-bit float"
    )


def _read_other(path):
    import imageio.v3 as iio
    from PIL import Image

    from pafu_cli.io import _png

    data = _read_bytes(path)
    head = _png.header(data)
    if head is not None:
        check_pixels(path, head[1], head[0])
    # Pillow drops 8 of the 16 bits of colour PNGs: decode those ourselves.
    if head is not None and head[2] == 16 and head[3] in (2, 4, 6):
        return _png.decode16(data)
    _pillow_header(data, path)
    Image.MAX_IMAGE_PIXELS = max_pixels()  # checked above: no warning below the limit
    return iio.imread(data, plugin="pillow")


def check_output_target(path, overwrite: bool, formats=None, use="use .png, .tif/.tiff or .jpg") -> str:
    """The output format of ``path`` after the checks that need neither the image nor
    any writing: a known extension (``formats``: extension -> format, default the
    image formats; ``use`` says which in the error), an existing folder, and no
    existing file (unless ``overwrite``) or anything that is not a regular file
    under that name."""
    path = Path(path)
    ext = path.suffix.lower()
    fmt = (WRITE_FORMATS if formats is None else formats).get(ext)
    if fmt is None:
        raise OutputError(f"{path}: unknown output extension {ext or '(none)'!r}; {use}")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: not a regular file (a device, FIFO or socket); give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: file exists; use --overwrite to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: output folder {folder} does not exist")
    return fmt


def _check_output(path, channels: int, dtype, overwrite: bool) -> str:
    """The output format of ``path``, after every check that needs no writing."""
    fmt = check_output_target(path, overwrite)
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise TypeError(f"write_image needs uint8 or uint16, got {np.dtype(dtype)}")
    if fmt == "jpeg" and np.dtype(dtype) != np.uint8:
        raise OutputError(f"{path}: JPEG holds 8 bits only; use --bits 8 or a .png/.tif output")
    if fmt == "jpeg" and channels in (2, 4):
        raise OutputError(f"{path}: JPEG has no alpha channel; use a .png or .tif output")
    return fmt


# Temporary files are written next to their output, named
# ``.<stem>.pafu<pid>-<random>.part<ext>`` (hidden, and naming the process that
# writes them), then published under the final name.
_TEMP = re.compile(r"^\..*\.pafu(\d+)-[^.]+\.part(\.[^.]*)?$")
_SWEPT: set = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temp_files(folder) -> list:
    """Remove the temporary files that pafu processes which no longer run left in
    ``folder`` (killed with SIGKILL, or a power cut); returns their paths. Files of
    running processes are left alone."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TEMP.match(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:
                pass
    if removed:
        log.info("%s: removed %d temporary file(s) left by stopped pafu runs", folder, len(removed))
    return removed


def remove_temp_files_of(path) -> list:
    """Remove the temporary files of output ``path`` that any process left (for
    a caller that knows no process is writing ``path`` any more, such as a
    cluster batch whose task for it has ended, wherever its worker ran); returns
    their paths."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.pafu\d+-[^.]+\.part{re.escape(path.suffix)}$")
    removed = []
    try:
        names = os.listdir(path.parent if str(path.parent) else ".")
    except OSError:
        return removed
    for name in names:
        if pattern.match(name):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)
                removed.append(path.parent / name)
    return removed


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """Give the finished temporary file its final name. Without ``overwrite`` this
    is a hard link, which fails if the name exists (so two processes writing the
    same output cannot both succeed); with it, or where the file system has no
    hard links, an atomic rename."""
    if not overwrite:
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            raise OutputError(f"{path}: file appeared while writing; use --overwrite to replace it") from None
        except OSError:  # no hard links here (FAT, some network file systems)
            if path.exists():
                raise OutputError(
                    f"{path}: file appeared while writing; use --overwrite to replace it"
                ) from None
    os.replace(tmp, path)


@contextlib.contextmanager
def _atomic_output(path, overwrite: bool):
    """A file handle on a temporary file next to ``path``, published under ``path``
    when the block completes (:func:`_publish`); removed if it raises or the
    process is interrupted (SIGINT, SIGTERM, SIGHUP): never a half-written file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if str(folder) not in _SWEPT:
        _SWEPT.add(str(folder))
        remove_stale_temp_files(folder)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem}.pafu{os.getpid()}-", suffix=f".part{path.suffix}", dir=folder
        )
    except OSError as e:
        raise OutputError(f"{path}: cannot write to {folder} ({e.strerror})") from None
    os.close(fd)
    _runtime.track(tmp)
    # No fsync: the rename guards against this process failing half-way (errors,
    # Ctrl-C, kill). Forcing the data to disk before it would add a wait for the
    # disk to every file (0.05 s for a 144 MB TIFF here, seconds on slow media);
    # like other image writers, durability across a power cut is left to the OS.
    try:
        with open(tmp, "wb") as fh:  # a named handle (tifffile wants its name)
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())
        if not overwrite and path.exists():
            raise OutputError(f"{path}: file appeared while writing; use --overwrite to replace it")
        _publish(tmp, path, overwrite)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _runtime.untrack(tmp)


def write_image(path, image: np.ndarray, overwrite: bool = False) -> None:
    """Write an integer image atomically; the extension picks PNG, TIFF or JPEG.

    The data goes to a temporary file in the destination folder, which is then
    renamed over ``path``: an interrupted run never leaves a truncated file
    under the final name.

    Parameters
    ----------
    path : str or Path
    image : ndarray (H, W) or (H, W, C), uint8 or uint16 (JPEG: uint8)
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.

    Raises
    ------
    OutputError
        Unknown extension, existing file without ``overwrite``, unwritable folder.
    """
    channels = 1 if image.ndim == 2 else image.shape[2]
    fmt = _check_output(path, channels, image.dtype, overwrite)
    with _atomic_output(path, overwrite) as fh:
        _encode(fh, image, fmt)


def write_rows(path, shape, dtype, blocks, overwrite: bool = False) -> None:
    """Write an image that arrives as blocks of rows, holding one block at a time.

    ``shape`` is (H, W) or (H, W, C); ``blocks`` yields arrays of ``dtype``
    (uint8 or uint16) with shape (rows, W[, C]) whose rows add up to H. PNG and
    TIFF are written as the rows come (the same pixels as :func:`write_image`
    writes); JPEG cannot be streamed, so its blocks are gathered first. Same
    atomicity and errors as :func:`write_image`.
    """
    h = shape[0]
    channels = 1 if len(shape) == 2 else shape[2]
    fmt = _check_output(path, channels, dtype, overwrite)
    if fmt == "jpeg":
        write_image(path, np.concatenate(list(blocks), axis=0), overwrite)
        return
    done = [0]

    def counted():
        for blk in blocks:
            if blk.shape[1:] != tuple(shape[1:]) or blk.dtype != np.dtype(dtype):
                raise ValueError(f"block {blk.shape} {blk.dtype} does not fit {shape} {np.dtype(dtype)}")
            done[0] += blk.shape[0]
            yield blk

    with _atomic_output(path, overwrite) as fh:
        if fmt == "png":
            from pafu_cli.io import _png

            _png.write_stream(fh, shape, dtype, counted())
        else:
            import tifffile

            tifffile.imwrite(
                fh,
                _strips(counted(), TIFF_STRIP_ROWS),
                shape=tuple(shape),
                dtype=dtype,
                rowsperstrip=TIFF_STRIP_ROWS,
                **_tiff_options(channels),
            )
        if done[0] != h:
            raise ValueError(f"blocks hold {done[0]} rows, the image has {h}")


TIFF_STRIP_ROWS = 64


def _strips(blocks, rows: int):
    """Re-cut blocks of rows into (uncompressed) TIFF strips of ``rows`` rows, as bytes."""
    held = []
    n = 0
    for blk in blocks:
        while len(blk):
            take = blk[: rows - n]
            held.append(take)
            n += len(take)
            blk = blk[len(take) :]
            if n == rows:
                yield np.ascontiguousarray(np.concatenate(held)).tobytes()
                held, n = [], 0
    if n:
        yield np.ascontiguousarray(np.concatenate(held)).tobytes()


def _tiff_options(channels: int) -> dict:
    """Baseline TIFF, uncompressed (as dcraw/LibRaw write it: fast to write and read)."""
    photometric = "rgb" if channels in (3, 4) else "minisblack"
    extras = {"extrasamples": ["unassalpha"]} if channels in (2, 4) else {}
    return dict(photometric=photometric, planarconfig="contig", compression=None, **extras)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _encode(fh, image: np.ndarray, fmt: str) -> None:
    channels = 1 if image.ndim == 2 else image.shape[2]
    if fmt == "tiff":
        import tifffile

        # Straight into the file: through an in-memory buffer it took 10x longer
        # (0.64 vs 0.06 s for 24 MP x 16-bit: the buffer grows by copying).
        tifffile.imwrite(fh, image, **_tiff_options(channels))
        return
    if fmt == "png":
        from pafu_cli.io import _png

        fh.write(_png.encode(image))
        return
    import imageio.v3 as iio

    kwargs = {"quality": 95} if fmt == "jpeg" else {}
    fh.write(
        iio.imwrite("<bytes>", image, plugin="pillow", extension=f".{fmt.replace('jpeg', 'jpg')}", **kwargs)
    )
