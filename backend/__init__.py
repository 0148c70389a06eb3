"""ClarityMentor backend: an emotion-aware voice mentor service."""

__version__ = "0.1.0"
