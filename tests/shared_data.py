"""Where the tests find the real Fashion-MNIST files (../shared/data beside the repository),
and the mark that skips a test, with its reason, on a clone without them."""
from __future__ import annotations

from pathlib import Path

import pytest

from netspec.runtime.data import DATASETS

FASHION_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"
FILES = list(DATASETS["fashion_mnist"].files.values())
needs_fashion_mnist = pytest.mark.skipif(
    not all((FASHION_MNIST / f).is_file() for f in FILES),
    reason=f"real Fashion-MNIST files not present in {FASHION_MNIST} (../shared/data beside the repository)",
)
