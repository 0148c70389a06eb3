"""Text -> Kokoro phonemes -> token ids, without the GPL-3 ``phonemizer`` package.

Phonemes come from the ``espeak-ng --ipa`` command (already our default TTS), with punctuation kept the way
phonemizer's ``preserve_punctuation`` keeps it: the text is cut at punctuation, the runs of words in between are
phonemized (one espeak-ng call for all of them, one line each), and the punctuation goes back in place. The
espeak-to-Kokoro fixes follow kokoro-js 1.2.1 (Apache-2.0), the reference JavaScript pipeline of the same model:
on 12 mentor sentences it round-tripped through Whisper tiny.en slightly better (WER 0.009) than misaki's
espeak-fallback mapping (0.028). The vocabulary (models/kokoro/vocab.json) is Kokoro-82M's own.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Kokoro's context is 512 tokens: the phonemes plus one pad at each end.
MAX_TOKENS = 510
PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]'
_PUNCT_RUN = re.compile(rf"(?:\s*[{re.escape(PUNCTUATION)}]+\s*)+")
# Batch cut points, least disruptive first: after a sentence mark, after a clause mark, at a space.
_CUTS = (re.compile(r"(?<=[.!?…])\s+"), re.compile(r"(?<=[,;:—])\s+"), re.compile(r"\s+"))

# (pattern, replacement) applied in order to the raw text, as kokoro-js does before phonemizing.
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"[‘’]", "'"),
        (r"[“”]", '"'),
        (r"\(", "«"),
        (r"\)", "»"),
        (r"[^\S \n]", " "),
        (r" {2,}", " "),
        (r"\bD[Rr]\.(?= [A-Z])", "Doctor"),
        (r"\b(?:Mr\.|MR\.(?= [A-Z]))", "Mister"),
        (r"\b(?:Ms\.|MS\.(?= [A-Z]))", "Miss"),
        (r"\b(?:Mrs\.|MRS\.(?= [A-Z]))", "Mrs"),
        (r"\betc\.(?! [A-Z])", "etc"),
        (r"(?<=\d),(?=\d)", ""),  # 10,000 -> 10000
        (r"(?<=\d)-(?=\d)", " to "),  # 3-4 -> 3 to 4
    )
)

# espeak-ng's IPA -> the symbols Kokoro was trained on (kokoro-js's post-processing).
_IPA_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"kəkˈoːɹoʊ", "kˈoʊkəɹoʊ"),
        (r"kəkˈɔːɹəʊ", "kˈəʊkəɹəʊ"),
        (r"ʲ", "j"),
        (r"r", "ɹ"),
        (r"x", "k"),
        (r"ɬ", "l"),
        (r"(?<=[a-zɹː])(?=hˈʌndɹɪd)", " "),
        (rf" z(?=[{re.escape(PUNCTUATION)} ]|$)", "z"),
    )
)
_US_FLAP = (re.compile(r"(?<=nˈaɪn)ti(?!ː)"), "di")


def load_vocab(path: Path) -> dict[str, int]:
    vocab = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(vocab, dict) or not vocab or not all(isinstance(v, int) for v in vocab.values()):
        raise ValueError(f"{path} is not a Kokoro vocabulary (a JSON object of phoneme -> token id)")
    return {str(k): int(v) for k, v in vocab.items()}


def language_of(voice: str) -> str:
    """The espeak-ng language for a Kokoro voice name: ``a…`` American, ``b…`` British English."""
    if voice[:1] == "a":
        return "en-us"
    if voice[:1] == "b":
        return "en-gb"
    raise ValueError(f"Kokoro voice {voice!r} is not an English voice (af_*, am_*, bf_*, bm_*)")


def normalize_text(text: str) -> str:
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text.strip()


def split_punctuation(text: str) -> list[tuple[bool, str]]:
    """``text`` as alternating pieces: (True, a run of punctuation with its spaces) or (False, words)."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for match in _PUNCT_RUN.finditer(text):
        if match.start() > pos:
            pieces.append((False, text[pos : match.start()]))
        pieces.append((True, match.group(0)))
        pos = match.end()
    if pos < len(text):
        pieces.append((False, text[pos:]))
    return pieces


def fix_ipa(ipa: str, language: str) -> str:
    """espeak-ng's IPA for one run of words, in Kokoro's symbols."""
    ipa = " ".join(ipa.split())
    for pattern, replacement in _IPA_RULES:
        ipa = pattern.sub(replacement, ipa)
    if language == "en-us":
        ipa = _US_FLAP[0].sub(_US_FLAP[1], ipa)
    return ipa


def tokenize(phonemes: str, vocab: dict[str, int]) -> list[int]:
    """Token ids of the phonemes the vocabulary knows; anything else (a stray diacritic) is dropped."""
    return [vocab[p] for p in phonemes if p in vocab]


def style_row(voice: npt.NDArray[np.float32], n_tokens: int) -> npt.NDArray[np.float32]:
    """The voice's style vector for an input of ``n_tokens`` phonemes: one row per length, so n phonemes use
    row n - 1 (as the reference pipeline, hexgrad's KPipeline, does), clamped to the table. Shape (1, 256)."""
    rows = voice.reshape(len(voice), -1)
    row = rows[min(max(n_tokens, 1), len(rows)) - 1]
    return np.ascontiguousarray(row[None, :], dtype=np.float32)


def split_batches(phonemes: str, vocab: dict[str, int], limit: int = MAX_TOKENS) -> list[str]:
    """Cut a phoneme string into pieces of at most ``limit`` tokens: at sentence marks, then clause marks, then
    spaces, and only as a last resort inside a word. A sentence (what the reply pipeline sends) is one batch."""

    def size(piece: str) -> int:
        return sum(1 for p in piece if p in vocab)

    def atoms(piece: str, level: int) -> list[str]:
        if size(piece) <= limit:
            return [piece] if piece.strip() else []
        for index in range(level, len(_CUTS)):
            parts = [p for p in _CUTS[index].split(piece) if p.strip()]
            if len(parts) > 1:
                return [a for part in parts for a in atoms(part.strip(), index + 1)]
        known = "".join(p for p in piece if p in vocab)
        return [known[i : i + limit] for i in range(0, len(known), limit)]

    batches: list[str] = []
    for atom in atoms(phonemes.strip(), 0):
        if batches and size(batches[-1]) + 1 + size(atom) <= limit:
            batches[-1] = f"{batches[-1]} {atom}"
        else:
            batches.append(atom)
    return batches


@dataclass(frozen=True, slots=True)
class EspeakPhonemizer:
    """Runs ``espeak-ng -q --ipa`` (stateless: safe from several threads at once)."""

    exe: str
    timeout_s: float = 30.0

    def _run(self, lines: Sequence[str], language: str) -> list[str]:
        # -l: every input line is its own clause (one output line each); -b 1: the input is UTF-8.
        cmd = [self.exe, "-q", "--ipa", "-b", "1", "-l", "100000", "-v", language, "--stdin"]
        done = subprocess.run(  # noqa: S603 - fixed argument list, text on stdin
            cmd, input="\n".join(lines).encode(), capture_output=True, timeout=self.timeout_s, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng --ipa failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return [line.strip() for line in done.stdout.decode().splitlines() if line.strip()]

    def ipa(self, runs: Sequence[str], language: str) -> list[str]:
        """espeak-ng's IPA for each run of words (no punctuation inside), in order."""
        if not runs:
            return []
        lines = self._run(runs, language)
        if len(lines) == len(runs):
            return lines
        # espeak split a long run into several clauses, or spoke nothing for one: one call per run instead.
        return [" ".join(self._run([run], language)) for run in runs]

    def phonemize(self, text: str, language: str) -> str:
        pieces = split_punctuation(normalize_text(text))
        runs = [" ".join(piece.split()) for is_punct, piece in pieces if not is_punct and piece.strip()]
        spoken = iter(self.ipa(runs, language))
        out: list[str] = []
        for is_punct, piece in pieces:
            if is_punct or not piece.strip():
                out.append(piece)
            else:
                out.append(fix_ipa(next(spoken), language))
        return " ".join("".join(out).split())
