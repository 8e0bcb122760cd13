from services.common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    service_name: str = "ingest"
    http_port: int = 8081
    max_images: int = 16
    max_candidates: int = 64
    # Without an explicit N, generate this many candidates per requested image (rounded up).
    default_oversample: float = 1.5
    link_ttl_s: int = 3600
