"""Training data that streams: uint8 pairs converted a batch at a time, views not copies,
and a training run whose memory does not grow with the number of pairs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from trainers.data.convert import to_tensor
from trainers.data.shards import open_shards, write_shards
from trainers.evaluate.metrics import psnr_per_image
from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairArrays, PairTensors, batches, fit
from trainers.train.plateau import validation_scores

ROOT = Path(__file__).resolve().parents[3]
TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def _arrays(n: int = 10, size: int = 16) -> PairArrays:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, n, size, size, 3), dtype=np.uint8)
    return PairArrays(images[0], images[1], torch.randn(3, 16), rng.integers(0, 3, n))


def _floats(pairs: PairArrays) -> PairTensors:
    """The old way: the whole set as float tensors."""
    return PairTensors(to_tensor(pairs.source), to_tensor(pairs.target), pairs.text[torch.from_numpy(pairs.concept)])


def test_a_batch_is_to_tensor_of_its_rows_and_a_subset_is_a_view() -> None:
    pairs = _arrays()
    sub = pairs.subset([9, 2, 5, 7]).subset(np.array([3, 0]))  # rows 7, 9
    assert sub.source is pairs.source and len(sub) == 2  # no pixels copied
    batch = sub.batch(torch.tensor([1, 0, 1]), torch.device("cpu"))
    whole = _floats(pairs)
    for got, want in ((batch.source, whole.source), (batch.target, whole.target), (batch.text, whole.text)):
        assert torch.equal(got, want[[9, 7, 9]])
    taken = pairs.take([7, 9])
    assert taken.source.shape == (2, 16, 16, 3) and not np.shares_memory(taken.source, pairs.source)
    assert torch.equal(taken.batch(torch.tensor([0]), torch.device("cpu")).source, whole.source[[7]])


def test_read_only_arrays_from_the_object_store_batch_without_copying_the_set() -> None:
    # Ray's object store hands numpy arrays back as read-only zero-copy views (pickle 5
    # out-of-band buffers); torch warns on those if they reach from_numpy whole.
    pairs = _arrays()
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(pairs, protocol=5, buffer_callback=buffers.append)
    shared = pickle.loads(payload, buffers=[memoryview(b).toreadonly() for b in buffers])
    assert not shared.source.flags.writeable and len(payload) < pairs.source.nbytes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = shared.batch(torch.tensor([4, 1]), torch.device("cpu"))
    assert torch.equal(batch.target, _floats(pairs).target[[4, 1]])


def test_fit_and_validation_give_the_numbers_of_the_float_set() -> None:
    pairs = _arrays(12)
    losses = []
    for data in (pairs, _floats(pairs)):
        torch.manual_seed(0)
        model = E2GANGenerator(TINY)
        losses.append(fit(model, data, steps=3, batch_size=4, lr=1e-3, seed=1).last_loss)
    assert losses[0] == losses[1]  # the same batches, bit for bit
    whole = _floats(pairs)
    with torch.no_grad():
        want = psnr_per_image(model(whole.source, whole.text), whole.target)
    torch.testing.assert_close(validation_scores(model, pairs, batch_size=5), want)
    assert [len(b) for b in batches(pairs, torch.device("cpu"), 5)] == [5, 5, 2]


PROBE = """
import sys

import numpy as np
import torch

from trainers.data.convert import to_tensor
from trainers.data.shards import open_shards
from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairArrays, PairTensors, fit


def anon() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))


def fit_growth(make_data) -> int:
    # Peak anonymous memory above the start: making the set, then after each step of a short fit.
    start = anon()
    peak = [start]
    data = make_data()
    fit(model, data, steps=3, batch_size=8, lr=1e-3, on_step=lambda step, loss: peak.append(anon()))
    peak.append(anon())
    return max(peak) - start


torch.set_num_threads(1)
source, target, _ = open_shards(sys.argv[1])
model = E2GANGenerator(GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2))
text = torch.randn(1, 16)
warm = torch.zeros(8, 3, source.shape[1], source.shape[2])
fit(model, PairTensors(warm, warm, text.expand(8, -1)), steps=1, batch_size=8, lr=1e-3)  # the step's own buffers
print(fit_growth(lambda: PairArrays(source, target, text)))
if "--then-float" in sys.argv:  # the whole set as float32 tensors, as before: the probe must see it
    every = np.arange(len(source))
    print(fit_growth(lambda: PairTensors(to_tensor(source[every]), to_tensor(target[every]), text.expand(len(every), -1))))
"""


def _flat_pairs(n: int, size: int):
    """n keys and a load giving constant images (what the pixels are does not change the memory)."""

    def load(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(keys), size, size, 3)
        return np.full(shape, 64, np.uint8), np.full(shape, 192, np.uint8)

    return [f"{n}-{i}" for i in range(n)], load


def test_training_memory_stays_flat_when_the_pairs_grow_4x(tmp_path: Path) -> None:
    n, size = 2000, 64  # 49 MB of uint8 pairs, 196 MB as float32; 4n: 196 MB, 786 MB
    folders = {}
    for count in (n, 4 * n):
        keys, load = _flat_pairs(count, size)
        folders[count] = write_shards(tmp_path / str(count), keys, load)
    assert len(open_shards(folders[4 * n])[0]) == 4 * n
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = {  # the n run also measures the old float32 set afterwards, in the same process
        count: subprocess.Popen([sys.executable, "-c", PROBE, str(folders[count]), *extra], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for count, extra in ((n, ["--then-float"]), (4 * n, []))
    }
    growth = {}
    for count, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
        grew = [int(line) for line in out.split()]
        growth[(count, "shards")] = grew[0]
        if len(grew) > 1:
            growth[(count, "float")] = grew[1]
    float_bytes = 2 * n * 3 * size * size * 4
    print({f"{count} pairs, {mode}": f"{grew / 2**20:.1f} MiB" for (count, mode), grew in growth.items()})
    assert growth[(n, "float")] > 0.9 * float_bytes  # the probe sees a set held in memory
    # Flat: the 3n more pairs are 147 MB as uint8 and 590 MB as float32; the growth is the step's own.
    assert growth[(4 * n, "shards")] < 1.5 * growth[(n, "shards")] + 16 * 2**20
    assert growth[(4 * n, "shards")] < 0.05 * 4 * float_bytes


def test_shards_batch_like_the_arrays_they_hold(tmp_path: Path) -> None:
    pairs = _arrays(9)
    rows = {f"k{i}": i for i in range(9)}
    folder = write_shards(tmp_path, list(rows), lambda keys: (pairs.source[[rows[k] for k in keys]],
                                                               pairs.target[[rows[k] for k in keys]]), shard_pairs=4)
    source, target, _ = open_shards(folder)
    sharded = PairArrays(source, target, pairs.text, pairs.concept).subset(np.arange(1, 9, 2))
    in_memory = pairs.subset(np.arange(1, 9, 2))
    index = torch.tensor([3, 0, 2])
    for got, want in zip(vars(sharded.batch(index, torch.device("cpu"))).values(),
                         vars(in_memory.batch(index, torch.device("cpu"))).values(), strict=True):
        assert torch.equal(got, want)
