"""Which passing candidates ship, without I/O: the best K by weighted score, spread over the
job's styles, and never two pictures alike.

* Shares. K is split over the job's S styles as evenly as possible: K // S each, the
  remainder one more to each of the first styles in the job's order (60 over 6 styles: 10
  each; 10 over 4: 3, 3, 2, 2). A job without styles is one style of K.
* A candidate's style is the one it was generated in (`CandidateRef.style`); one that does
  not say is in `styles[index % S]`, the order the router spreads them in. A candidate of a
  style the job does not have is no style's: it ships only to fill at the end (below).
* Within each style, best score first (ties to the lower index), and never within
  NEAR_DUPLICATE_BITS of a candidate already selected, whatever its style: the candidates are
  taken in rank order over the whole job, each style until its share is full. This applies
  to an order of a subject or across styles (`Order.distinct`), which asks for that many
  different pictures; a plain job keeps its best K as they are (a template that restyles
  one photo makes candidates alike by design). A candidate without a fingerprint (a video
  clip) is no one's near-duplicate.
* Short. A style whose share is not full says how many it misses (`Selection.short`); the
  scorer asks the router for those (`RegenerationRequested.needed_by_style`) while it may
  generate more. Once it may not (the attempt was final), the job takes a partial delivery:
  each style's shortfall is filled from the best distinct candidates left in the other
  styles, up to K in all, and fewer than K ship only when no distinct passing one is left.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.common.contracts import JobSpec
from services.common.quality.fingerprints import alike_any


class Styled(Protocol):
    """A candidate of the job and the style it says it was generated in."""

    @property
    def index(self) -> int: ...

    @property
    def style(self) -> str | None: ...


class Selectable(Styled, Protocol):
    """A scored candidate as the selection reads it (a CandidateScore, or what the store keeps)."""

    @property
    def passed(self) -> bool: ...

    @property
    def score(self) -> float: ...

    @property
    def fingerprint(self) -> str | None: ...


@dataclass(frozen=True)
class SelectionAsk:
    """What a job asks the selection for: `images` (K), over its `styles` (none: one style),
    each picture different from the others (`distinct`)."""

    images: int
    styles: tuple[str, ...] = ()
    distinct: bool = False

    @classmethod
    def of(cls, spec: JobSpec | None, images: int) -> "SelectionAsk":
        if spec is None:
            return cls(images)
        styles = tuple(style.name for style in spec.styles or ())
        return cls(images, styles, distinct=bool(styles) or spec.subject is not None)

    def shares(self) -> dict[str | None, int]:
        """Each style's share of K: K // S, one more for each of the first K % S."""
        if not self.styles:
            return {None: self.images}
        each, more = divmod(self.images, len(self.styles))
        return {style: each + (position < more) for position, style in enumerate(self.styles)}

    def style_of(self, candidate: Styled) -> str | None:
        """The candidate's style among the job's; None without styles, or for one it does not have."""
        if not self.styles:
            return None
        if candidate.style is None:
            return self.styles[candidate.index % len(self.styles)]
        return candidate.style if candidate.style in self.styles else None

    def room(self, style: str | None) -> int:
        """The share of `style` (0 for a style the job does not have)."""
        return self.shares().get(style, 0)


@dataclass(frozen=True)
class Selection:
    """Positions (in the sequence given) of the candidates to ship, best first, and what each
    style misses of its share, before any filling."""

    chosen: list[int]
    short: dict[str | None, int]

    def needed_by_style(self) -> dict[str, int] | None:
        """The shortfall by style name, for a job across styles; None for one without."""
        named = {style: missing for style, missing in self.short.items() if style is not None}
        return named or None


def ranked(candidates: Sequence[Selectable]) -> list[int]:
    """Positions of the passing candidates, best score first, ties to the lower index."""
    passing = [position for position, candidate in enumerate(candidates) if candidate.passed]
    return sorted(passing, key=lambda p: (-candidates[p].score, candidates[p].index))


def select(order: SelectionAsk, candidates: Sequence[Selectable], *, fill: bool = False) -> Selection:
    """The best of each style up to its share, no two near-duplicates; with `fill`, the
    shortfall taken from the best distinct candidates left, up to K."""
    room = order.shares()
    chosen: list[int] = []
    prints: list[str] = []
    best_first = ranked(candidates)

    def distinct(position: int) -> bool:
        fingerprint = candidates[position].fingerprint
        return not order.distinct or fingerprint is None or not alike_any(fingerprint, prints)

    def take(position: int) -> None:
        chosen.append(position)
        fingerprint = candidates[position].fingerprint
        if fingerprint is not None:
            prints.append(fingerprint)

    for position in best_first:
        style = order.style_of(candidates[position])
        if room.get(style, 0) > 0 and distinct(position):
            room[style] -= 1
            take(position)
    short = {style: missing for style, missing in room.items() if missing > 0}
    if fill:
        for position in best_first:
            if len(chosen) >= order.images:
                break
            if position not in chosen and distinct(position):
                take(position)
    return Selection(sorted(chosen, key=best_first.index), short)


@dataclass(frozen=True, kw_only=True)
class Lot:
    """The candidates of one style in a batch being scored (`positions` in it), the style's
    `share`, the (score, index) of the job's candidates of that style selected so far and
    their fingerprints by index, and whether the job asks for different pictures: a style's
    lot is measured only until its own best are known (`tiers.Enough`), a near-duplicate of a
    better one not counted among them."""

    style: str | None
    positions: list[int]
    share: int
    selected: tuple[tuple[float, int], ...]
    prints: dict[int, str] = field(default_factory=dict)
    distinct: bool = False


def lots(order: SelectionAsk, batch: Sequence[Styled], *, passing: Sequence[Selectable]) -> list[Lot]:
    """The batch split by style, in the job's order of styles (one lot without styles), each
    with what its style has selected so far among the job's `passing` candidates."""
    chosen = [passing[p] for p in select(order, passing).chosen]
    by_style: dict[str | None, list[int]] = {}
    for position, candidate in enumerate(batch):
        by_style.setdefault(order.style_of(candidate), []).append(position)
    chosen_by_style: dict[str | None, list[Selectable]] = {}
    for candidate in chosen:
        chosen_by_style.setdefault(order.style_of(candidate), []).append(candidate)
    return [Lot(style=style, positions=positions, share=order.room(style),
                selected=tuple((c.score, c.index) for c in chosen_by_style.get(style, ())),
                prints={c.index: c.fingerprint for c in chosen_by_style.get(style, ()) if c.fingerprint},
                distinct=order.distinct)
            for style, positions in by_style.items()]
