"""The price book, versioned in YAML: credits per delivered image by template × tier,
credits per delivered second of a clip by tier × resolution, and credits for training a
subject's identity."""

from datetime import datetime
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

TIERS = ("stable", "fast", "low-cost")
RESOLUTIONS = ("480p", "720p", "1080p")


class CreditPack(BaseModel):
    """Credits a tenant can buy at once, and what they cost (minor units of `currency`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credits: int = Field(gt=0)
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[a-z]{3}$")


class PriceBookVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    effective_from: datetime
    credit_value_micro_usd: int = Field(gt=0)
    prices: dict[str, dict[str, int]]
    provider_spend_cap_per_image_micro_usd: dict[str, int]
    credit_packs: dict[str, CreditPack] = Field(default_factory=dict)
    # Clips: credits per delivered second by tier and resolution, and the provider spend a
    # job may reach per second of clip asked for (versions before clips have neither).
    video_second_prices: dict[str, dict[str, int]] = Field(default_factory=dict)
    provider_spend_cap_per_video_second_micro_usd: dict[str, int] = Field(default_factory=dict)
    # Bulk work (a batch's lines) costs this much less per output; an evaluation costs this
    # much per image scored (versions before batches and evaluations have neither).
    batch_discount_percent: int = Field(0, ge=0, lt=100)
    evaluation_price_per_image: int | None = Field(None, gt=0)
    # A subject's identity: credits for training it, by how it is carried (`lora`), held with
    # the job that may train it and charged once per subject and photo set (versions before
    # subjects have none).
    training_credits: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def prices_are_positive_per_known_tier(self) -> "PriceBookVersion":
        for template, by_tier in self.prices.items():
            for tier, price in by_tier.items():
                if tier not in TIERS or price <= 0:
                    raise ValueError(f"{self.version}: {template}/{tier} must be a known tier with a positive price")
        for tier, by_resolution in self.video_second_prices.items():
            for resolution, price in by_resolution.items():
                if tier not in TIERS or resolution not in RESOLUTIONS or price <= 0:
                    raise ValueError(f"{self.version}: video {tier}/{resolution} must be a known tier and resolution"
                                     " with a positive price")
        return self

    def unit_price(self, template: str, tier: str) -> int | None:
        return self.prices.get(template, {}).get(tier)

    def bulk_price(self, price: int) -> int:
        """An output's price at bulk priority: the batch discount off, rounded down, at least 1."""
        return max(1, price * (100 - self.batch_discount_percent) // 100) if self.batch_discount_percent else price

    def second_price(self, tier: str, resolution: str) -> int | None:
        """Credits per delivered second of a clip at `resolution`; None where the book has no price."""
        return self.video_second_prices.get(tier, {}).get(resolution)

    def training_price(self, mode: str = "lora") -> int:
        """Credits for training a subject's identity carried as `mode`; 0 where the book has none."""
        return self.training_credits.get(mode, 0)

    def spend_cap(self, tier: str, images: int) -> int:
        return self.provider_spend_cap_per_image_micro_usd.get(tier, 0) * images

    def video_spend_cap(self, tier: str, clips: int, *, seconds: int) -> int:
        """The provider spend a job of `clips` clips of `seconds` each may reach."""
        return self.provider_spend_cap_per_video_second_micro_usd.get(tier, 0) * clips * seconds


class PriceBook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    versions: list[PriceBookVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def versions_in_order(self) -> "PriceBook":
        dates = [v.effective_from for v in self.versions]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("price book versions must be listed by strictly increasing effective_from")
        return self

    def at(self, when: datetime) -> PriceBookVersion:
        """The version in force at `when`: the latest that has taken effect."""
        for version in reversed(self.versions):  # newest first; usually the first one answers
            if version.effective_from <= when:
                return version
        raise LookupError(f"no price book version is in force at {when.isoformat()}")


def load_price_book(path: str | Path | None = None) -> PriceBook:
    text = Path(path).read_text() if path else (resources.files("services.ledger") / "pricebook.yaml").read_text()
    return PriceBook.model_validate(yaml.safe_load(text))
