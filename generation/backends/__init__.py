from .base import (
    GenerationBackend,
    GenerationCancelled,
    GenerationRequest,
    GenerationResult,
    GenerationWatch,
    PlanInputs,
    backend_for,
)

__all__ = ["GenerationBackend", "GenerationCancelled", "GenerationRequest", "GenerationResult", "GenerationWatch",
           "PlanInputs", "backend_for"]
