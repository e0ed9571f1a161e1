import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def t5_tokenizer_dir():
    d = SHARED / "data" / "t5_tokenizer"
    if not d.is_dir():
        pytest.skip(f"T5 tokenizer test data not found at {d}")
    return d
