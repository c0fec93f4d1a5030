"""Every input is bounded: only regular files are read (a FIFO never hangs, a device never
streams), sizes are capped before reading, an IDX header's size is checked before
decompressing, local datasets must match their published checksums, and a named data
folder that is missing or empty is an error. Memory is measured by counting allocated bytes
(tracemalloc), never by time."""
from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netspec.cli import main
from netspec.errors import CheckpointError, DataError
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime import data as D
from netspec.runtime.data import idx as IDX
from netspec.runtime.data import tabular

from shared_data import trust_copy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = """
name: tiny
input: [2]
layers:
  - {op: linear, out: 1}
train: {dataset: {name: synthetic_regression, examples: 32}, loss: mse, epochs: 1, batch_size: 8}
"""


def idx_header(shape: tuple[int, ...], type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        try:
            fn()
        except DataError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ file kinds
@pytest.mark.parametrize("command", [["check"], ["compile"], ["draw", "-o", "{tmp}/x.dot"]])
def test_a_fifo_as_the_spec_is_refused_without_waiting(tmp_path, command):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "netspec", args[0], str(fifo), *args[1:]], env=env,
                          capture_output=True, text=True, timeout=120)  # a hang would be killed, and fail
    assert done.returncode == 2, done.stderr
    assert "named pipe (FIFO), not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_a_fifo_in_a_spec_folder_is_passed_over_not_waited_on(tmp_path):
    (tmp_path / "good.yaml").write_text(TINY)
    os.mkfifo(tmp_path / "pipe.yaml")
    result = CliRunner().invoke(main, ["check", str(tmp_path)])  # returns: the FIFO is never opened for a blocking read
    assert result.exit_code == 0 and "1 of 1 specs valid" in result.output, result.output


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_weights_from_a_device_are_refused_at_once(tmp_path, device):
    import netspec

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    model = netspec.compile(spec)
    with pytest.raises(CheckpointError, match="character device, not a regular file"):
        ckpt.load_weights(model, device)
    result = CliRunner().invoke(main, ["eval", str(spec), "--weights", device, "--device", "cpu"])
    assert result.exit_code == 2 and "not a regular file" in result.output, result.output


def test_weights_from_a_fifo_named_safetensors_are_refused(tmp_path):
    import netspec

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="named pipe"):
        ckpt.load_weights(netspec.compile(spec), fifo)


def test_weights_over_the_size_limit_are_refused_before_reading(tmp_path, monkeypatch):
    import netspec

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    model = netspec.compile(spec)
    ckpt.save_weights(model, tmp_path / "model.safetensors")
    monkeypatch.setattr(ckpt, "MAX_WEIGHTS_BYTES", 64)
    for name in ("model.safetensors",):
        with pytest.raises(CheckpointError, match="more than the limit of 64"):
            ckpt.load_weights(model, tmp_path / name)


def test_csv_that_is_a_fifo_or_too_big_is_refused(tmp_path, monkeypatch):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        D.load_csv(fifo, "y")
    big = tmp_path / "big.csv"
    big.write_text("a,y\n" + "1,2\n" * 100)
    monkeypatch.setattr(tabular, "MAX_CSV_BYTES", 100)
    with pytest.raises(DataError, match="more than the limit of 100"):
        D.load_csv(big, "y")


# ------------------------------------------------------------------ IDX sizes
def test_a_gzip_bomb_allocates_only_what_its_header_declares(tmp_path):
    """10 images of 28×28 declared (7,840 bytes), 64 MiB of zeros behind them in a ~64 KB gzip:
    reading stops after the declared size plus one chunk; the old reader allocated it all."""
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(idx_header((10, 28, 28)))
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(DataError, match=r"header says shape \(10, 28, 28\) \(7840 bytes of data\) but the file holds more"):
        D.read_idx(bomb)
    assert peak_bytes(lambda: D.read_idx(bomb)) < 8 << 20


def test_a_header_claiming_more_than_the_limit_is_refused_before_decompressing(tmp_path):
    huge = tmp_path / "huge-idx3-ubyte.gz"
    huge.write_bytes(gzip.compress(idx_header((1 << 20, 1 << 10, 1 << 10)) + bytes(1000)))
    with pytest.raises(DataError, match=r"1,099,511,627,776 bytes of data\), more than the limit"):
        D.read_idx(huge)
    assert peak_bytes(lambda: D.read_idx(huge)) < 1 << 20


def test_the_limit_applies_to_raw_files_too(tmp_path, monkeypatch):
    raw = tmp_path / "raw-idx1-ubyte"
    raw.write_bytes(idx_header((5000,)) + bytes(5000))
    assert D.read_idx(raw).shape == (5000,)
    monkeypatch.setattr(IDX, "MAX_IDX_BYTES", 4096)
    with pytest.raises(DataError, match="more than the limit"):
        D.read_idx(raw)


def test_a_truncated_payload_in_a_bounded_read_names_both_sizes(tmp_path):
    cut = tmp_path / "cut-idx1-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_header((100,)) + bytes(60)))
    with pytest.raises(DataError, match=r"\(100 bytes of data\) but the file holds 60 bytes"):
        D.read_idx(cut)


# ------------------------------------------------------------------ checksums
def write_fake(folder: Path, n: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for part, fname in D.DATASETS["fashion_mnist"].idx.files.items():
        shape = (n, 4, 4) if part.endswith("_x") else (n,)
        values = rng.integers(0, 256, shape) if part.endswith("_x") else np.arange(n) % 10
        (folder / fname).write_bytes(gzip.compress(idx_header(shape) + values.astype(np.uint8).tobytes()))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NETSPEC_DATA", raising=False)
    monkeypatch.setitem(D.SYSTEM_DIRS, "fashion_mnist", ())

    def offline(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(IDX, "urlopen", offline)
    IDX._decode.cache_clear()
    yield tmp_path
    IDX._decode.cache_clear()


def test_a_local_copy_that_is_not_the_published_dataset_is_refused(isolated):
    write_fake(isolated / "data")
    with pytest.raises(DataError) as err:
        D.load_dataset("fashion_mnist", isolated / "data")
    message = str(err.value)
    assert "do not match the published fashion_mnist" in message and "SHA-256" in message and "\n" not in message


def test_the_verdict_is_cached_and_a_changed_file_is_verified_again(isolated, monkeypatch):
    write_fake(isolated / "data")
    trust_copy(monkeypatch, isolated / "data")
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(IDX.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    D.load_dataset("fashion_mnist", isolated / "data")
    assert len(calls) == 4 and (D.cache_dir("fashion_mnist") / "verified.json").is_file()
    IDX._decode.cache_clear()
    D.load_dataset("fashion_mnist", isolated / "data")
    assert len(calls) == 4  # verified once: the cached verdict holds
    labels = isolated / "data" / "t10k-labels-idx1-ubyte.gz"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    IDX._decode.cache_clear()
    D.load_dataset("fashion_mnist", isolated / "data")
    assert len(calls) == 5  # only the changed file again


def test_mnist_gz_files_are_checked_by_their_published_md5(isolated):
    write_fake(isolated / "data")
    with pytest.raises(DataError, match="MD5 is [0-9a-f]{32}, expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        D.load_dataset("mnist", isolated / "data")


# ------------------------------------------------------------------ named folders are strict
def test_netspec_data_missing_or_empty_is_an_error_even_with_a_copy_in_the_cache(isolated, monkeypatch):
    write_fake(D.cache_dir("fashion_mnist"))
    trust_copy(monkeypatch, D.cache_dir("fashion_mnist"))
    assert len(D.load_dataset("fashion_mnist").train_x) == 6  # the cache is used when nothing is named
    IDX._decode.cache_clear()
    monkeypatch.setenv("NETSPEC_DATA", str(isolated / "nowhere"))
    with pytest.raises(DataError, match="NETSPEC_DATA=.*nowhere: no such folder"):
        D.load_dataset("fashion_mnist")
    (isolated / "empty").mkdir()
    monkeypatch.setenv("NETSPEC_DATA", str(isolated / "empty"))
    with pytest.raises(DataError, match="NETSPEC_DATA=.*empty: the folder is empty"):
        D.load_dataset("fashion_mnist")
    (isolated / "other").mkdir()
    (isolated / "other" / "notes.txt").write_text("not data")
    with pytest.raises(DataError, match="--data-dir .*other: fashion_mnist: need .*put the files there") as err:
        D.load_dataset("fashion_mnist", data_dir=isolated / "other")
    assert str(D.cache_dir("fashion_mnist")) not in str(err.value) and "network" not in str(err.value)


def test_data_dir_that_is_empty_is_refused_by_train_before_launching(tmp_path):
    (tmp_path / "empty").mkdir()
    spec = tmp_path / "mlp.yaml"
    spec.write_text("name: m\ninput: [1, 28, 28]\nlayers:\n  - flatten\n  - {op: linear, out: 10}\n")
    result = CliRunner().invoke(main, ["train", str(spec), "--data-dir", str(tmp_path / "empty"), "-q", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "the folder is empty" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_deflate_stream_reader_reads_compressed_input_in_chunks(tmp_path):
    """The bound holds for the compressed side too: a 30 MB gzip of random bytes behind a
    small header is not read into memory whole."""
    payload = np.random.default_rng(0).integers(0, 256, 30 << 20, dtype=np.uint8).tobytes()
    noisy = tmp_path / "noisy-idx1-ubyte.gz"
    noisy.write_bytes(gzip.compress(idx_header((16,)) + payload, compresslevel=1))
    del payload
    assert peak_bytes(lambda: D.read_idx(noisy)) < 8 << 20
