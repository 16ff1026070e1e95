from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.text.hub import check_tokenizer, hub_allowed, prepare_offline

REPO = Path(__file__).resolve().parents[3]


def test_offline_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E2GAN_ALLOW_HUB", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    prepare_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and not hub_allowed()


def test_opt_in_keeps_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2GAN_ALLOW_HUB", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    prepare_offline()
    assert hub_allowed() and "HF_HUB_OFFLINE" not in os.environ


def test_offline_reaches_an_already_imported_hub() -> None:
    # huggingface_hub reads the variable at import; a late call must still switch it off.
    code = (
        "import huggingface_hub.constants as c; assert not c.HF_HUB_OFFLINE; "
        "from trainers.text.hub import prepare_offline; prepare_offline(); print(c.HF_HUB_OFFLINE)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "E2GAN_ALLOW_HUB")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


def test_check_tokenizer_passes_real_sizes(tmp_path: Path) -> None:
    check_tokenizer(list(range(49408)), tmp_path)
    with pytest.raises(RuntimeError, match=f"tokenizer files missing in {tmp_path}"):
        check_tokenizer([0, 1], tmp_path)
