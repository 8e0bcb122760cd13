from services.common.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    service_name: str = "delivery"
    http_port: int = 8085
    link_ttl_s: int = 3600
