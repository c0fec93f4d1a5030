"""Tests for netspec.runtime.data and netspec.runtime.data.augment (fast; never touch the network)."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec import datasets
from netspec.errors import DataError
from netspec.runtime.data import augment as A
from netspec.runtime import data as D
from netspec.runtime.data import batching as B
from netspec.runtime.data import idx as IDX

from shared_data import FASHION_MNIST as SHARED, FILES, needs_fashion_mnist as needs_shared, trust_copy  # noqa: E402


# --------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else array.dtype.newbyteorder(">")).tobytes()


def write_tiny_dataset(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> None:
    """Four valid little IDX files (4×4 images) under the standard names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    parts = {
        "train_x": rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        "train_y": np.arange(n_train, dtype=np.uint8) % 10,
        "test_x": rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        "test_y": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for part, fname in D.DATASETS["fashion_mnist"].idx.files.items():
        raw = idx_bytes(parts[part])
        if gz:
            (folder / fname).write_bytes(gzip.compress(raw))
        else:
            (folder / fname.removesuffix(".gz")).write_bytes(raw)


def offline(*args, **kwargs):
    raise OSError("network unreachable (test)")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No NETSPEC_DATA, a private HOME/XDG cache, no system copies, and no network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NETSPEC_DATA", raising=False)
    monkeypatch.setitem(D.SYSTEM_DIRS, "fashion_mnist", ())
    monkeypatch.setattr(IDX, "urlopen", offline)
    return tmp_path


# --------------------------------------------------------------------------- IDX parsing

@pytest.fixture(scope="module")
def real_train():
    return D.read_idx(SHARED / FILES[0]), D.read_idx(SHARED / FILES[1])


@needs_shared
def test_read_idx_real_fashion_mnist(real_train):
    images, labels = real_train
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,)
    assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert torch.equal(torch.bincount(labels.long()), torch.full((10,), 6000))
    test_labels = D.read_idx(SHARED / FILES[3])
    assert test_labels.shape == (10000,)
    assert torch.equal(torch.bincount(test_labels.long()), torch.full((10,), 1000))


def test_read_idx_raw_and_gz_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(a)))
    for name in ("a.idx", "a.idx.gz"):
        t = D.read_idx(tmp_path / name)
        assert t.dtype == torch.uint8 and torch.equal(t, torch.from_numpy(a))
    f = np.array([1.5, -2.0], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(f, 0x0D))
    assert D.read_idx(tmp_path / "f.idx").tolist() == [1.5, -2.0]


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    for w in words:
        assert w in msg, msg


def test_read_idx_bad_magic(tmp_path):
    p = tmp_path / "bad-magic.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + b"\0" * 16))
    with pytest.raises(DataError) as err:
        D.read_idx(p)
    assert_one_line_naming(err, p, "magic", "0x12345678")


def test_read_idx_truncated_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((50, 8, 8), dtype=np.uint8)))
    p = tmp_path / "truncated.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as err:
        D.read_idx(p)
    assert_one_line_naming(err, p, "truncated")


@pytest.mark.parametrize("extra", [-1, +3])
def test_read_idx_wrong_payload_size(tmp_path, extra):
    raw = idx_bytes(np.zeros((10, 2, 2), dtype=np.uint8))
    raw = raw[:extra] if extra < 0 else raw + b"\0" * extra
    p = tmp_path / "wrong-size.gz"
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError) as err:
        D.read_idx(p)
    assert_one_line_naming(err, p, "(10, 2, 2)", "40 bytes")


def test_read_idx_not_gzip_garbage(tmp_path):
    p = tmp_path / "garbage-idx3-ubyte.gz"
    p.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError) as err:
        D.read_idx(p)
    assert_one_line_naming(err, p, "not a gzip file")


def test_read_idx_missing_and_short(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        D.read_idx(tmp_path / "nope.gz")
    p = tmp_path / "short"
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError) as err:
        D.read_idx(p)
    assert_one_line_naming(err, p, "too short")


# --------------------------------------------------------------------------- MD5

def test_verify_md5_wrong_hash(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"hello")
    D.verify_md5(p, "5d41402abc4b2a76b9719d911017c592")  # md5("hello")
    with pytest.raises(DataError) as err:
        D.verify_md5(p, "0" * 32)
    assert_one_line_naming(err, p, "MD5", "0" * 32)


@needs_shared
def test_shared_files_match_published_md5sums():
    sums = {}
    for line in (SHARED / "MD5SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    assert set(sums) == set(FILES)
    assert sums == D.DATASETS["fashion_mnist"].idx.md5  # constants in the code are the published ones
    for name, digest in sums.items():
        D.verify_md5(SHARED / name, digest)


# --------------------------------------------------------------------------- discovery

def test_netspec_data_is_found(isolated, monkeypatch):
    write_tiny_dataset(isolated / "envdata")
    trust_copy(monkeypatch, isolated / "envdata")
    monkeypatch.setenv("NETSPEC_DATA", str(isolated / "envdata"))
    s = D.load_dataset("fashion_mnist")
    assert s.train_x.shape == (12, 1, 4, 4) and s.train_x.dtype == torch.uint8
    assert s.train_y.dtype == torch.int64 and s.test_y.shape == (5,)
    assert s.input_shape == (1, 4, 4) and s.num_classes == 10
    assert s.classes[0] == "t-shirt" and s.classes[-1] == "ankle boot"


@needs_shared
def test_netspec_data_with_symlinks_to_real_files(isolated, monkeypatch):
    env = isolated / "links"
    env.mkdir()
    for f in FILES:
        (env / f).symlink_to(SHARED / f)
    monkeypatch.setenv("NETSPEC_DATA", str(env))
    files, _ = D.find_dataset("fashion_mnist")
    assert files is not None and all(p.parent == env for p in files.values())


def test_subfolder_raw_files_and_precedence(isolated, monkeypatch):
    write_tiny_dataset(isolated / "given" / "fashion-mnist", n_train=7, gz=False)
    write_tiny_dataset(isolated / "env" / "fashion_mnist", n_train=9)
    monkeypatch.setenv("NETSPEC_DATA", str(isolated / "env"))
    trust_copy(monkeypatch, isolated / "given" / "fashion-mnist")
    assert len(D.load_dataset("fashion_mnist", data_dir=isolated / "given").train_x) == 7
    trust_copy(monkeypatch, isolated / "env" / "fashion_mnist")
    assert len(D.load_dataset("fashion_mnist").train_x) == 9


@needs_shared
def test_a_recompressed_copy_passes_by_the_checksum_of_its_decompressed_bytes(isolated, monkeypatch):
    """Debian's package rewrites the gzip headers: other .gz bytes (another MD5), same data."""
    debian = isolated / "usr-share"
    debian.mkdir()
    for f in FILES:
        (debian / f).write_bytes(gzip.compress(gzip.decompress((SHARED / f).read_bytes()), compresslevel=1, mtime=0))
        assert IDX._file_md5(debian / f) != D.DATASETS["fashion_mnist"].idx.md5[f]
    monkeypatch.setitem(D.SYSTEM_DIRS, "fashion_mnist", (debian,))
    s = D.load_dataset("fashion_mnist", download=False)
    assert s.train_x.shape == (60000, 1, 28, 28) and s.test_x.shape == (10000, 1, 28, 28)


def test_missing_everywhere_names_files_and_places(isolated):
    for download in (True, False):
        with pytest.raises(DataError) as err:
            D.load_dataset("fashion_mnist", download=download)
        msg = str(err.value)
        assert "\n" not in msg
        for f in FILES:
            assert f in msg
        assert str(isolated / "xdg" / "netspec" / "fashion_mnist") == str(D.cache_dir("fashion_mnist"))
        assert str(D.cache_dir("fashion_mnist")) in msg
        assert ("network unreachable" in msg) if download else ("downloading is off" in msg)
    assert not D.cache_dir("fashion_mnist").exists() or not any(D.cache_dir("fashion_mnist").iterdir())


def test_cache_dir_respects_xdg_and_home(isolated, monkeypatch):
    assert D.cache_dir("mnist") == isolated / "xdg" / "netspec" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert D.cache_dir("mnist") == isolated / "home" / ".cache" / "netspec" / "mnist"


def test_unknown_dataset():
    with pytest.raises(DataError, match="known: " + ", ".join(sorted(datasets.DATASETS))):
        D.load_dataset("cifar100")


def fake_urlopen(served: dict[str, bytes], seen: list[str]):
    def urlopen(url, timeout=None):
        seen.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[-1]])
    return urlopen


@needs_shared
def test_download_verifies_md5_and_renames(isolated, monkeypatch):
    seen: list[str] = []
    served = {f: (SHARED / f).read_bytes() for f in FILES}
    monkeypatch.setattr(IDX, "urlopen", fake_urlopen(served, seen))
    dest = D.download_dataset("fashion_mnist")
    assert dest == D.cache_dir("fashion_mnist")
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)  # no .part left
    assert all(u.startswith(D.DATASETS["fashion_mnist"].idx.mirror) for u in seen) and len(seen) == 4
    files, _ = D.find_dataset("fashion_mnist")
    assert files is not None and files["train_x"].parent == dest
    D.download_dataset("fashion_mnist")  # already there: no new requests
    assert len(seen) == 4


def test_download_md5_mismatch_leaves_nothing(isolated, monkeypatch):
    served = {f: b"not the real file" for f in FILES}
    monkeypatch.setattr(IDX, "urlopen", fake_urlopen(served, []))
    with pytest.raises(DataError) as err:
        D.load_dataset("mnist")
    msg = str(err.value)
    assert "MD5" in msg and "\n" not in msg and "train-images-idx3-ubyte.gz" in msg
    assert list(D.cache_dir("mnist").iterdir()) == []


def test_corrupt_local_copy_names_file(isolated, monkeypatch):
    folder = isolated / "given"
    write_tiny_dataset(folder)
    (folder / FILES[1]).write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3], dtype=np.uint8))))
    trust_copy(monkeypatch, folder)  # the checksums pass: the structure check speaks
    with pytest.raises(DataError) as err:
        D.load_dataset("fashion_mnist", data_dir=folder)
    assert_one_line_naming(err, folder / FILES[1], "3 labels for 12 images")


# --------------------------------------------------------------------------- float / resize

def test_to_float_and_resize():
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    f = D.to_float(x)
    assert f.dtype == torch.float32 and f.max() == 1.0 and f.min() == 0.0
    assert D.to_float(f) is f
    r = D.resize(f, 8)
    assert r.shape == (1, 1, 8, 8) and D.resize(f, (2, 2)) is f
    with pytest.raises(TypeError):
        D.resize(x, 8)


# --------------------------------------------------------------------------- batching

def test_iterate_batches_covers_every_index_once():
    x = torch.arange(103)
    y = x * 10
    g = torch.Generator().manual_seed(3)
    batches = list(B.iterate_batches(x, y, 16, shuffle=True, generator=g))
    assert [len(b) for b, _ in batches] == [16] * 6 + [7]
    seen = torch.cat([b for b, _ in batches])
    assert torch.equal(seen.sort().values, x) and not torch.equal(seen, x)
    assert all(torch.equal(yb, xb * 10) for xb, yb in batches)
    assert len(list(B.iterate_batches(x, y, 16, drop_last=True))) == 6
    assert torch.equal(torch.cat([b for b, _ in B.iterate_batches(x, y, 16, shuffle=False)]), x)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 150), b=st.integers(1, 12), world=st.integers(1, 4),
       drop_last=st.booleans(), seed=st.integers(0, 2**31))
def test_shard_matches_single_process(n, b, world, drop_last, seed):
    x = torch.arange(n)

    def run(batch, rank, ws):
        g = torch.Generator().manual_seed(seed)
        return [xb for xb, _ in B.iterate_batches(x, x, batch, True, g, drop_last, rank, ws)]

    single = run(b * world, 0, 1)
    ranks = [run(b, r, world) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1  # every rank takes the same number of steps
    assert len(ranks[0]) == B.num_batches(n, b, drop_last, world)
    for t, steps in enumerate(zip(*ranks)):
        assert len({len(s) for s in steps}) == 1  # equal per-rank batch sizes
        joined = torch.cat(steps)
        if len(single[t]) == b * world:  # every full step is identical to the 1-process run
            assert torch.equal(joined, single[t])
        else:  # the last short step differs only by the < world_size dropped remainder
            assert torch.equal(joined, single[t][: len(joined)]) and len(single[t]) - len(joined) < world
    everything = torch.cat([torch.cat(r) for r in ranks]) if ranks[0] else torch.empty(0, dtype=torch.long)
    assert len(set(everything.tolist())) == len(everything)  # no example twice in an epoch


def test_shard_slices_and_validation():
    assert B.shard(10, 0, 2) == slice(0, 5) and B.shard(10, 1, 2) == slice(5, 10)
    assert B.shard(7, 2, 3) == slice(4, 6)
    with pytest.raises(ValueError):
        B.shard(10, 2, 2)


def test_batches_epochs_are_reproducible_and_differ():
    x = torch.arange(50)
    a, b = B.Batches(x, x, 8, seed=1), B.Batches(x, x, 8, seed=1)
    e0, e1 = [torch.cat([xb for xb, _ in a]) for _ in range(2)]
    assert len(a) == 7 and not torch.equal(e0, e1)
    b.set_epoch(1)
    assert torch.equal(torch.cat([xb for xb, _ in b]), e1)


def test_train_val_split_and_kfold_partition():
    tr, va = B.train_val_split(100, 0.2, seed=0)
    assert len(va) == 20 and torch.equal(torch.cat([tr, va]).sort().values, torch.arange(100))
    folds = B.kfold_indices(23, 5, seed=1)
    vals = torch.cat([v for _, v in folds])
    assert torch.equal(vals.sort().values, torch.arange(23))
    assert sorted(len(v) for _, v in folds) == [4, 4, 5, 5, 5]
    for t, v in folds:
        assert torch.equal(torch.cat([t, v]).sort().values, torch.arange(23))
    with pytest.raises(ValueError):
        B.kfold_indices(3, 5)


# --------------------------------------------------------------------------- augment

def batch(n: int = 6, c: int = 3, h: int = 8, w: int = 10) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(42)) + 0.1  # no zeros


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(A.AUGMENTATIONS))
def test_augment_keeps_shape_dtype_and_is_deterministic(name):
    fn = A.AUGMENTATIONS[name]
    for x in (batch(), (batch() * 200).to(torch.uint8)):
        out = fn(x, generator=gen(5))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.equal(out, fn(x, generator=gen(5)))


def test_random_crop_identity_and_windows():
    x = batch()
    assert torch.equal(A.random_crop(x, 0, gen()), x)
    p = 2
    out = A.random_crop(x, p, gen(1))
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(len(x)):  # each sample is some window of its padded input
        windows = [padded[i, :, r : r + 8, c : c + 10] for r in range(2 * p + 1) for c in range(2 * p + 1)]
        assert any(torch.equal(out[i], wdw) for wdw in windows)
    assert not all(torch.equal(out[i], x[i]) for i in range(len(x)))


def test_horizontal_flip():
    x = batch()
    assert torch.equal(A.horizontal_flip(x, 1.0, gen()), torch.flip(x, dims=[-1]))
    assert torch.equal(A.horizontal_flip(x, 0.0, gen()), x)
    out = A.horizontal_flip(batch(n=200), 0.5, gen())
    flipped = sum(not torch.equal(o, i) for o, i in zip(out, batch(n=200)))
    assert 60 < flipped < 140


def test_random_erasing():
    x = batch(n=64, h=16, w=16)
    assert torch.equal(A.random_erasing(x, p=0.0, generator=gen()), x)
    out = A.random_erasing(x, p=1.0, generator=gen(), value=0.0)
    erased = out == 0
    assert torch.equal(erased.all(1), erased.any(1))  # same pixels in every channel
    area = erased[:, 0].flatten(1).sum(1).float() / (16 * 16)
    # 0.33 of the area before h and w are rounded to whole pixels (as torchvision does)
    assert (area > 0).float().mean() > 0.8 and (area <= 0.45).all()
    for m in erased[:, 0]:  # each erased region is one rectangle
        if m.any():
            rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
            assert m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_build_augment():
    aug = A.build_augment([{"random_crop": {"padding": 4}}, {"horizontal_flip": {"p": 0.5}}, "random_erasing"])
    x = batch()
    assert aug(x, gen(3)).shape == x.shape and torch.equal(aug(x, gen(3)), aug(x, gen(3)))
    assert torch.equal(A.build_augment([])(x), x) and torch.equal(A.build_augment(None)(x), x)
    flip_all = A.build_augment([{"horizontal_flip": {"p": 1.0}}])
    assert torch.equal(flip_all(x, gen()), x.flip(-1))
    with pytest.raises(ValueError, match="horizontal_flip, random_crop, random_erasing"):
        A.build_augment([{"mixup": {}}])
    with pytest.raises(ValueError, match="random_crop"):
        A.build_augment([{"random_crop": {"pad": 4}}])


# --------------------------------------------------------------------------- synthetic / CSV

def test_synthetic_regression_recovers_parameters():
    w, b = torch.tensor([2.0, -3.4]), 4.2
    s = D.synthetic_regression(w, b, n=1000, seed=0)
    assert s.train_x.shape == (1000, 2) and s.train_y.shape == (1000, 1) and s.test_x.shape == (1000, 2)
    assert s.task == "regression" and s.num_classes == 0 and s.input_shape == (2,)
    design = torch.cat([s.train_x, torch.ones(1000, 1)], dim=1)
    sol = torch.linalg.lstsq(design, s.train_y).solution.flatten()
    assert torch.allclose(sol[:2], w, atol=1e-2) and abs(sol[2].item() - b) < 1e-2


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_csv_regression_and_classification(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{2 * i + 1}" for i in range(10))
    s = D.load_csv(write(tmp_path / "r.csv", "a,b,y\n" + rows + "\n"), "y", test_fraction=0.2)
    assert s.train_x.shape == (8, 2) and s.test_x.shape == (2, 2) and s.train_y.shape == (8, 1)
    assert torch.equal(s.train_y.flatten(), 2 * s.train_x[:, 0] + 1)
    assert s.name == "r" and s.task == "regression"

    text = "species,x1,x2\n" + "\n".join(f"{['setosa', 'virginica'][i % 2]},{i},{-i}" for i in range(10))
    c = D.load_csv(write(tmp_path / "c.csv", text), "species", task="classification", test_fraction=0.3)
    assert c.classes == ("setosa", "virginica") and c.train_y.dtype == torch.int64
    assert torch.equal(c.train_y, c.train_x[:, 0].long() % 2) and len(c.test_y) == 3

    num = D.load_csv(write(tmp_path / "n.csv", "x,label\n1,10\n2,9\n3,10\n4,2\n"), "label", task="classification")
    assert num.classes == ("2", "9", "10")


def test_load_csv_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        D.load_csv(tmp_path / "missing.csv", "y")
    p = write(tmp_path / "d.csv", "a,b,y\n1,2,3\n")
    with pytest.raises(DataError) as err:
        D.load_csv(p, "target")
    assert_one_line_naming(err, p, "'target'", "a, b, y")
    p = write(tmp_path / "bad.csv", "a,b,y\n1,2,3\n4,five,6\n")
    with pytest.raises(DataError) as err:
        D.load_csv(p, "y")
    assert_one_line_naming(err, p, "row 3", "'b'", "'five'")
    p = write(tmp_path / "bady.csv", "a,y\n1,2\n3,?\n")
    with pytest.raises(DataError, match="row 3, column 'y'"):
        D.load_csv(p, "y")
    p = write(tmp_path / "ragged.csv", "a,b,y\n1,2,3\n4,5\n")
    with pytest.raises(DataError, match="row 3 has 2 fields"):
        D.load_csv(p, "y")
    with pytest.raises(DataError, match="empty"):
        D.load_csv(write(tmp_path / "empty.csv", ""), "y")
