"""The PAFU paper's toy proof (SAD): a two-kernel PAFU solves it, a plain CNN of
the same size trained the same way does not. See research/sad.py (a research
experiment at the repository root, not part of the package)."""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for research/

from research import sad

pytestmark = pytest.mark.slow  # trains two networks (about half a minute)

SEED = 0


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pafu, pafu_mse = sad.train_sad("pafu", seed=SEED)
        cnn, cnn_mse = sad.train_sad("cnn", seed=SEED)
    finally:
        torch.set_num_threads(threads)
    return pafu, pafu_mse, cnn, cnn_mse


def test_sad_data():
    import numpy as np

    x, y = sad.sad_batch(np.random.default_rng(0), 2)
    assert x.shape == y.shape == (2, 1, 89, 89)
    black = x == 0
    assert 0.005 < black.float().mean() < 0.03  # sparse grid, ~0.6 / 49
    assert x[~black].min() >= 1 / 255 - 1e-7 and x.max() <= 1
    near = torch.nn.functional.max_pool2d(black.float(), 5, 1, 2) > 0
    assert torch.equal(y[near], torch.zeros_like(y[near]))
    assert torch.equal(y[~near], x[~near])


def test_parameter_counts_match():
    n_pafu = sad.n_params(sad.make_pafu())
    n_cnn = sad.n_params(sad.PlainCNN())
    assert abs(n_pafu - n_cnn) / n_pafu < 0.25, (n_pafu, n_cnn)


def test_pafu_learns_dirac_and_zero_kernel(trained):
    pafu, pafu_mse, _, _ = trained
    # Measured 7.6e-9 (seed 0), up to 2.7e-6 over seeds 0-2, 4; the identity
    # map scores ~0.09.
    assert pafu_mse < 1e-4
    bank = pafu.masked_bank().detach()[:, 0, 0]  # (2, 5, 5)
    dirac = torch.zeros(5, 5)
    dirac[2, 2] = 1.0
    dist = torch.stack([(bank - dirac).abs().amax((1, 2)), bank.abs().amax((1, 2))])
    a = int(dist[0].argmin())  # the Dirac, whichever slot it ended in
    # Measured max deviations <= 2e-4; an offset of 0.01 per entry would already
    # cost an MSE of ~1e-2 on the near-black pixels.
    assert dist[0, a] < 0.01, bank
    assert dist[1, 1 - a] < 0.01, bank
    # Both kernels are used, in the task's proportion (~27% of pixels are near black).
    x, y = sad.sad_batch(__import__("numpy").random.default_rng(SEED + 1000), 4)
    with torch.no_grad():
        _, sel = pafu(x, mode="argmax")
    assert 0.15 < float(sel[:, 1 - a].mean()) < 0.4


def test_constant_selector_fails(trained):
    """Negative control: the same bank with a constant choice is only the identity."""
    pafu, _, _, _ = trained
    import copy

    net = copy.deepcopy(pafu)
    with torch.no_grad():
        net.selector[-1].weight.zero_()
    mse = sad.test_mse(net, "pafu", SEED + 1000)
    assert mse > 0.03


def test_plain_cnn_does_not(trained):
    _, pafu_mse, cnn, cnn_mse = trained
    # Measured 0.090 .. 0.091 (seeds 0-2, lr 1e-2 and 3e-3): the identity error.
    assert cnn_mse > 0.03
    assert cnn_mse > 10 * pafu_mse
