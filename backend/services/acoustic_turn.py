"""The acoustic end-of-turn signal (Smart Turn) for the turn taker: scored on the turn runner, off the event loop.

An optional signal must never hold up or break a turn: a full runner or a failing model gives ``None`` (the policy
then decides from the transcript alone), and the failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from backend.core.audio_utils import FloatAudio
from backend.services.model_service import ModelService

log = logging.getLogger(__name__)

AcousticScorer = Callable[[FloatAudio], Awaitable[float | None]]


def acoustic_end_scorer(models: ModelService) -> AcousticScorer | None:
    """P(turn complete) from the audio of the turn so far; None when no acoustic model is loaded."""
    engine = models.engines.end_of_turn
    if engine is None:
        return None
    runner = models.turn_runner

    async def score(audio: FloatAudio) -> float | None:
        if runner.pending >= runner.max_pending:
            return None
        try:
            return float(await runner.run(engine.probability, audio))
        except Exception:
            log.warning("acoustic end-of-turn scoring failed; using the text signals alone", exc_info=True)
            return None

    return score
