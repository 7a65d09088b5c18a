from .base import GenerationBackend, GenerationRequest, GenerationResult, backend_for

__all__ = ["GenerationBackend", "GenerationRequest", "GenerationResult", "backend_for"]
