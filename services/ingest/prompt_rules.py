"""Prompt screening, without I/O: rules the operator and the tenant set, each naming a category
(`violence`, `brand-names`, …) with terms and patterns, judged on a prompt before anything is
held or any provider called. The first rule that matches refuses the prompt, naming its
category.

Terms match whole words, whatever their case (`knife` refuses "A KNIFE" but not "knifepoint").
The operator's patterns are regular expressions (the operator is trusted); a tenant's are
wildcard patterns (`*` any run of letters, `?` one) matched against each word, so no pattern a
tenant writes can make a prompt's check slow.
"""

import fnmatch
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

MAX_WORD = 64  # a tenant's patterns look at this much of each word
Category = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
Term = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Wildcard = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s\[\]]+$")]
Policy = Literal["fail_open", "fail_closed"]


class Rule(BaseModel):
    """One rule: the category a refusal names, and the terms it refuses."""

    category: Category
    terms: list[Term] = Field([], max_length=200, description="whole words or phrases, any case")


class PromptRule(Rule):
    """A tenant's rule."""

    patterns: list[Wildcard] = Field([], max_length=50, description="`*` any letters, `?` one, matched per word")


class OperatorRule(Rule):
    """The operator's rule, for every tenant."""

    patterns: list[str] = Field([], max_length=200, description="regular expressions, searched in the prompt")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        """A pattern that does not compile stops the service at start, not a submission."""
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {error}") from None
        return patterns


@dataclass(frozen=True)
class Refusal:
    category: str
    source: Literal["operator", "tenant", "moderation"]
    matched: str | None = None  # what matched, for the operator's log; never echoed to the tenant


def _words(prompt: str) -> list[str]:
    return [word[:MAX_WORD] for word in re.findall(r"\w+", prompt.casefold())]


def term_matches(term: str, prompt: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", prompt.casefold()) is not None


def wildcard_matches(pattern: str, words: list[str]) -> bool:
    compiled = re.compile(fnmatch.translate(pattern.casefold()))
    return any(compiled.match(word) for word in words)


def screen_tenant(prompt: str, rules: list[PromptRule]) -> Refusal | None:
    words = _words(prompt)
    for rule in rules:
        for term in rule.terms:
            if term_matches(term, prompt):
                return Refusal(rule.category, "tenant", term)
        for pattern in rule.patterns:
            if wildcard_matches(pattern, words):
                return Refusal(rule.category, "tenant", pattern)
    return None


def screen_operator(prompt: str, rules: list[OperatorRule]) -> Refusal | None:
    for rule in rules:
        for term in rule.terms:
            if term_matches(term, prompt):
                return Refusal(rule.category, "operator", term)
        for pattern in rule.patterns:
            if re.search(pattern, prompt, re.IGNORECASE):
                return Refusal(rule.category, "operator", pattern)
    return None


def screen(prompt: str, operator: list[OperatorRule], *, tenant: list[PromptRule]) -> Refusal | None:
    """The operator's rules first (they hold for every tenant), then the tenant's own."""
    return screen_operator(prompt, operator) or screen_tenant(prompt, tenant)
