"""Array types for audio, importable without any audio library."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]
PCM16 = npt.NDArray[np.int16]
