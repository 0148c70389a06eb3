"""docs/configuration.md is generated from the Settings classes: it must be current, and complete."""

from __future__ import annotations

import re

from backend.config import Settings
from scripts.gen_config_docs import OUT, render


def test_configuration_doc_is_current() -> None:
    assert OUT.exists(), "docs/configuration.md is missing: run python -m scripts.gen_config_docs"
    assert OUT.read_text() == render(), "docs/configuration.md is stale: run python -m scripts.gen_config_docs"


def test_every_section_and_key_is_documented_with_its_env_var() -> None:
    text = render()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        keys = getattr(model, "model_fields", None)
        if keys is None:
            continue
        assert f"## `{section}`" in text
        for key in keys:
            assert f"`CLARITY_{section.upper()}__{key.upper()}`" in text, (section, key)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    assert all(len(c) == 5 for c in cells)
    assert [c[0] for c in cells if not c[4]] == [], "keys without a meaning: comment them in backend/config.py"
