from .base import GenerationBackend, GenerationRequest, GenerationResult, PlanInputs, backend_for

__all__ = ["GenerationBackend", "GenerationRequest", "GenerationResult", "PlanInputs", "backend_for"]
