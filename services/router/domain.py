"""Router rules, without I/O: where candidates are stored and what an attempt costs."""

from uuid import UUID


def candidate_key(tenant_id: str, job_id: UUID, attempt: int, index: int) -> str:
    return f"candidates/{tenant_id}/{job_id}/{attempt}/{index}.png"


def attempt_cost(candidates: int, cost_per_image_micro_usd: int) -> int:
    return candidates * cost_per_image_micro_usd
