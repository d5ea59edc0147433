"""Plain-NumPy references of every engine kernel (slow, obvious, test-only)."""

import numpy as np


def conv2d(x, w, b, relu):
    """x (H, W, Ci); w (Co, Ci, k, k) PyTorch order; reflected borders."""
    k = w.shape[2]
    r = (k - 1) // 2
    xp = np.pad(x.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, w.shape[0])) + b
    for dy in range(k):
        for dx in range(k):
            out += xp[dy : dy + h, dx : dx + wd] @ w[:, :, dy, dx].T.astype(np.float64)
    return np.maximum(out, 0) if relu else out


def trunk(model, x):
    """The selector on ``x``: (logits, the last hidden layer's output or None)."""
    f = (x - model.selector_input_mean) * model.selector_input_scale
    n = len(model.selector_weights)
    hidden = None
    for i, (w, b) in enumerate(zip(model.selector_weights, model.selector_biases)):
        f = conv2d(f, w, b, relu=i < n - 1)
        if i < n - 1:
            hidden = f
    return f, hidden


def select(model, x):
    f, _ = trunk(model, x)
    return np.argmax(f, axis=2).astype(np.int32), f


def select_top2(model, x):
    """The two largest logits' kernels (first of equal ones first) and the softmax
    weight of the first: (idx, idx2, weight, logits)."""
    _, f = select(model, x)
    order = np.argsort(-f, axis=2, kind="stable")
    idx, idx2 = order[..., 0].astype(np.int32), order[..., 1].astype(np.int32)
    l1 = np.take_along_axis(f, idx[..., None], 2)[..., 0]
    l2 = np.take_along_axis(f, idx2[..., None], 2)[..., 0]
    return idx, idx2, 1 / (1 + np.exp(l2 - l1)), f


def apply_mixed(x, idx, idx2, wt, bank):
    """``wt`` times kernel idx's output plus ``1 - wt`` times kernel idx2's."""
    return wt[..., None] * apply_bank(x, idx, bank) + (1 - wt[..., None]) * apply_bank(x, idx2, bank)


def apply_bank(x, idx, bank):
    """bank (n, Co, Ci, K, K); every pixel uses kernel idx[y, x]."""
    k = bank.shape[3]
    r = (k - 1) // 2
    h, w = x.shape[:2]
    xp = np.pad(x.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    sel = bank[idx].astype(np.float64)  # (H, W, Co, Ci, K, K)
    out = np.zeros((h, w, bank.shape[1]))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("hwoc,hwc->hwo", sel[..., dy, dx], xp[dy : dy + h, dx : dx + w])
    return out


def depth_to_space(y, s):
    h, w, cs = y.shape
    c = cs // (s * s)
    return y.reshape(h, w, c, s, s).transpose(0, 3, 1, 4, 2).reshape(h * s, w * s, c)


def pack_bayer(m):
    return np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]], axis=2)


def bilinear_demosaick(cfa, pattern):
    """Textbook bilinear demosaicking: zero-filled colour planes convolved with
    the standard kernels, borders by CFA-preserving reflection."""
    from pafu_cli.cfa import channel_map

    g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4
    rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    h, w = cfa.shape
    cp = np.pad(cfa.astype(np.float64), 2, mode="reflect")
    cm = np.pad(channel_map(pattern, (h, w)), 2, mode="reflect")
    out = np.zeros((h, w, 3))
    for c, k in ((0, rb), (1, g), (2, rb)):
        plane = np.where(cm == c, cp, 0.0)
        for dy in range(3):
            for dx in range(3):
                out[..., c] += k[dy, dx] * plane[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return out


def bilinear_upscale(img, s):
    """Half-pixel-centre bilinear upscaling, reflected borders, separable."""

    def axis(a, ax):
        n = a.shape[ax]
        pos = (np.arange(n * s) + 0.5) / s - 0.5
        i0 = np.floor(pos).astype(int)
        f = pos - i0
        ap = np.pad(a, [(1, 1) if d == ax else (0, 0) for d in range(a.ndim)], mode="reflect")
        lo = np.take(ap, i0 + 1, axis=ax)
        hi = np.take(ap, i0 + 2, axis=ax)
        shp = [1] * a.ndim
        shp[ax] = -1
        f = f.reshape(shp)
        return lo * (1 - f) + hi * f

    return axis(axis(img.astype(np.float64), 0), 1)


def run(model, x):
    """The whole model on ``x`` (H, W, C_in): (output after depth-to-space, idx,
    logits), float64; ``mix`` 2 blends the top two by their softmax weight. A
    ``pafunet`` model's kernels also read the last hidden layer (its
    ``feature_bank``): the same as a bank over the input and hidden channels,
    the feature kernels zero-padded to the bank's size."""
    bank = model.bank
    fb = getattr(model, "feature_bank", None)
    if fb is not None:
        _, hidden = trunk(model, x)
        p = (bank.shape[3] - fb.shape[3]) // 2
        fb = np.pad(fb, ((0, 0), (0, 0), (0, 0), (p, p), (p, p)))
        bank = np.concatenate([bank, fb], axis=2)
        xin = np.concatenate([x, hidden], axis=2)
    else:
        xin = x
    if model.mix == 2:
        idx, idx2, wt, logits = select_top2(model, x)
        y = apply_mixed(xin, idx, idx2, wt, bank)
    else:
        idx, logits = select(model, x)
        y = apply_bank(xin, idx, bank)
    return depth_to_space(y, model.shuffle), idx, logits


def packed_mosaic(cfa, pattern, pad):
    """``cfa`` reflect-padded as :func:`pafu_cli.cfa.to_packed_rggb` does (origin
    red, even size, ``pad`` more samples each side), packed into quads: (quads,
    (top, left) of the mosaic in the padded one)."""
    from pafu_cli.cfa import RED_OFFSET

    ry, rx = RED_OFFSET[pattern]
    pad += pad % 2
    h, w = cfa.shape
    top, left = pad + ry, pad + rx
    bottom, right = pad + (-(h + top + pad) % 2), pad + (-(w + left + pad) % 2)
    padded = np.pad(cfa.astype(np.float32), ((top, bottom), (left, right)), mode="reflect")
    return pack_bayer(padded), (top, left)


def run_mosaic(model, cfa, pattern, pad):
    """A demosaick model on a mosaic as :func:`pafu_cli.filters.pafu.engine.run_mosaic`:
    (RGB (H, W, 3), quad idx, logits), float64."""
    packed, (top, left) = packed_mosaic(cfa, pattern, pad)
    y, idx, logits = run(model, packed)
    h, w = cfa.shape
    return y[top : top + h, left : left + w], idx, logits
