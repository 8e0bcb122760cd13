from services.common.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    service_name: str = "delivery"
    http_port: int = 8085
    link_ttl_s: int = 3600
    # A copy to the public bucket is tried this many times, with backoff, before the job
    # fails at stage delivery (DeliveryFailed, uncharged).
    copy_attempts: int = 4
    copy_backoff_s: float = 0.5
    copy_backoff_max_s: float = 5.0
