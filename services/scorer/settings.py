from services.common.settings import ServiceSettings


class ScorerSettings(ServiceSettings):
    service_name: str = "scorer"
    http_port: int = 8084
    # Tier-1 dimensions every candidate must pass.
    dimensions: tuple[str, ...] = ("sharpness", "blank")
