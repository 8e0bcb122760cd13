from services.common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    service_name: str = "router"
    http_port: int = 8083
    # The built-in local provider: paints candidates on the CPU, some deliberately defective.
    local_width: int = 512
    local_height: int = 512
    local_defect_rate: float = 0.25
    local_cost_micro_usd_per_image: int = 2_000
