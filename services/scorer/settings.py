from services.common.settings import ServiceSettings


class ScorerSettings(ServiceSettings):
    service_name: str = "scorer"
    http_port: int = 8084
    # "cuda" or "cpu"; the CUDA device when present unless set.
    device: str | None = None
