import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The test models are tiny: a second thread only adds synchronisation, which dominates on a busy 2-core runner.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def t5_tokenizer_dir():
    d = SHARED / "data" / "t5_tokenizer"
    if not d.is_dir():
        pytest.skip(f"T5 tokenizer test data not found at {d}")
    return d
