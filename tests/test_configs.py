"""Every shipped config builds and passes gradcheck; the documented refusal is refused."""

import re
from pathlib import Path

import pytest

from nettrain.core.errors import UserError
from nettrain.tools.gradcheck import gradcheck_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
REFUSED = {"seed-tanh-cross-entropy.yaml": "cross_entropy needs outputs in (0, 1)"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_passes_gradcheck(config):
    if config.name in REFUSED:
        with pytest.raises(UserError, match=re.escape(REFUSED[config.name])):
            gradcheck_config(config)
        return
    report, ok = gradcheck_config(config, samples=2, entries=8)
    assert ok, report
