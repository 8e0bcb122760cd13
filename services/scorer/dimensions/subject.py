"""What a job's subject gives the scorer to compare its candidates with, made once per job
(`likeness.likeness_of`) and carried by every batch's `ScoringContext`: data only, so that the
batches that carry it and the dimensions that read it both import it from below."""

from dataclasses import dataclass

import numpy as np

from services.common.contracts import SubjectKind
from services.common.quality.profiles import eyes_waiver


@dataclass(frozen=True, kw_only=True)
class OpenedSubject:
    """A subject as opened with its key: its photos' clear bytes, and its centroid (None for a
    product, or a person whose centroid the job did not carry)."""

    subject_id: str
    kind: SubjectKind
    photos: list[bytes]
    centroid: np.ndarray | None = None


@dataclass(frozen=True)
class ProductView:
    """One photo of a product as ORB sees it: its features' points and descriptors."""

    points: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class Likeness:
    """What candidates are compared with, for one subject: decoded once per job and read by
    every batch (read-only). `photos` counts the photos it was made of, `faced` those that
    show one face, `eyes_seen` those of them in which two open eyes were found (None when
    the eye detector is not installed)."""

    subject_id: str
    kind: SubjectKind
    photos: int
    centroid: np.ndarray | None = None
    skin: tuple[float, float] | None = None
    faced: int = 0
    eyes_seen: int | None = None
    views: tuple[ProductView, ...] = ()

    @property
    def eyes_waiver(self) -> str | None:
        """Why eyes_open does not hold this subject's candidates, or None where it does: the
        eye detector finds two open eyes in fewer than half of the photos with one face."""
        return eyes_waiver(faced=self.faced, eyes_seen=self.eyes_seen) if self.kind == "person" else None

    def notes(self) -> dict[str, str]:
        """What each dimension measured against, added to its reasons."""
        if self.kind == "product":
            return {"product_match": f"matched with each of the subject's {self.photos} photos, the best counted"}
        return {"identity": f"against the centroid of the subject's {self.photos} photos",
                "skin_tone": f"against the skin of the subject's {self.faced} photos with one face"}
