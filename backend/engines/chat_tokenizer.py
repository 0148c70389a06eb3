"""A model's own tokenizer and chat template without transformers (and so without torch): ``tokenizers`` for the
ids, a sandboxed Jinja environment for the template, as transformers renders it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.engines.protocols import ChatMessage


def _raise(message: str) -> None:
    raise ValueError(message)


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def chat_template(folder: Path) -> str:
    """The Jinja chat template saved with a tokenizer (transformers 5 writes it to its own file)."""
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    template = json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")
    if not isinstance(template, str) or not template:
        raise ValueError(f"{folder} has no chat template (chat_template.jinja or tokenizer_config.json)")
    return template


class ChatTokenizer:
    def __init__(self, folder: Path) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self._template = env.from_string(chat_template(folder))
        self.bos_token = _token_text(config.get("bos_token"))
        self.eos_token = _token_text(config.get("eos_token"))
        eos: set[int] = set()
        generation = folder / "generation_config.json"
        if generation.exists():
            value = json.loads(generation.read_text()).get("eos_token_id")
            eos.update(value if isinstance(value, list) else [value] if value is not None else [])
        if self.eos_token is not None and (eos_id := self._tok.token_to_id(self.eos_token)) is not None:
            eos.add(eos_id)
        self.eos_ids = frozenset(int(i) for i in eos)

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        return str(
            self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "",
                eos_token=self.eos_token or "",
            )
        )

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self.encode(self.render(messages))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def token_id(self, token: str) -> int | None:
        found = self._tok.token_to_id(token)
        return None if found is None else int(found)


class IncrementalDecoder:
    """Token ids in, new text out; holds back an incomplete UTF-8 sequence until the next token completes it."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = ""

    def push(self, token: int) -> str:
        self._ids.append(token)
        text: str = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or len(text) <= len(self._emitted):
            return ""
        new, self._emitted = text[len(self._emitted) :], text
        return new
