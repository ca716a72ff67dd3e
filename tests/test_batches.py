import numpy as np
import torch

from data import Batches, split_train_val


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0] * 90 + [1] * 30)
    tr, va = split_train_val(labels, 0.1, seed=5)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 120
    assert (labels[va] == 0).sum() == 9 and (labels[va] == 1).sum() == 3
    tr2, va2 = split_train_val(labels, 0.1, seed=5)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, split_train_val(labels, 0.1, seed=6)[1])


def test_each_epoch_sees_every_sample_once_and_reshuffles():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2).contiguous()
    b = Batches(images, np.zeros(100), batch_size=16, shuffle=True, seed=1)
    epochs = [torch.cat([x[:, 0, 0, 0] for x, _ in b]) for _ in range(2)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(100))
    assert not torch.equal(epochs[0], epochs[1])
    again = Batches(images, np.zeros(100), batch_size=16, shuffle=True, seed=1)
    assert torch.equal(torch.cat([x[:, 0, 0, 0] for x, _ in again]), epochs[0])


def test_batches_are_even_and_never_ragged():
    b = Batches(torch.zeros(100, 3, 2, 2, dtype=torch.uint8), np.zeros(100), batch_size=16)
    sizes = [len(y) for _, y in b]
    assert len(sizes) == len(b) == 7 and sum(sizes) == 100 and max(sizes) <= 16 and min(sizes) >= 14


def test_ranks_draw_disjoint_shards_covering_each_epoch_once():
    images = torch.arange(101, dtype=torch.uint8).view(101, 1, 1, 1).expand(101, 3, 2, 2).contiguous()
    for world in (2, 3):
        ranks = [Batches(images, np.zeros(101), batch_size=8, shuffle=True, seed=4, rank=r, world_size=world)
                 for r in range(world)]
        for _ in range(2):  # two epochs: reshuffled, still an exact cover
            seen = [[int(v) for x, _ in r for v in x[:, 0, 0, 0]] for r in ranks]
            assert len({len(s) for s in seen}) <= 2 and len({len(r) for r in ranks}) == 1  # same step count
            assert sorted(v for s in seen for v in s) == list(range(101))


def test_flips_move_pixels_but_keep_them():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    b = Batches(x, np.zeros(64), batch_size=64, hflip=True, vflip=True, seed=0)
    [(out, _)] = list(b)
    assert out.dtype == torch.uint8 and not torch.equal(out, x)
    for i in range(64):
        candidates = [x[i], x[i].flip(2), x[i].flip(1), x[i].flip(1).flip(2)]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_crop_padding_shifts_within_bounds():
    x = torch.full((8, 3, 8, 8), 7, dtype=torch.uint8)
    [(out, _)] = list(Batches(x, np.zeros(8), batch_size=8, crop_padding=2, seed=3))
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0, 7}
