"""Token counting and fitting the prompt into the context window by dropping the least useful parts.

The whole prompt plus the longest answer must fit in n_ctx, or llama.cpp fails mid-generation.
Sections are dropped in a fixed priority order (least useful first) and the result is measured
again with the model's own tokenizer where the model server offers one (a safe estimate
where it does not), so the final prompt fits rather than being hoped to.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

DEFAULT_MARGIN_TOKENS: Final = 32


def prompt_budget(n_ctx: int, max_output_tokens: int, margin: int = DEFAULT_MARGIN_TOKENS) -> int:
    """Tokens the prompt may use: the context window minus the answer and a safety margin."""
    budget = n_ctx - max_output_tokens - margin
    if budget <= 0:
        raise PromptTooLargeError(
            f"n_ctx {n_ctx} leaves no room for a prompt after {max_output_tokens} output tokens "
            f"and a margin of {margin}"
        )
    return budget


class PromptTooLargeError(ValueError):
    """Even the parts of the prompt that are never dropped do not fit the budget."""


class SectionKind(enum.IntEnum):
    """Trimmable sections; the lower the value, the earlier it is trimmed."""

    CROSS_CAMERA = 0
    FEEDBACK = 1
    ENRICHMENT = 2
    BASELINE_HISTORY = 3
    ZONES = 4
    DETECTIONS = 5


@dataclass(slots=True)
class Section:
    """A titled list of lines, most important first; trimming removes lines from the end."""

    kind: SectionKind
    title: str
    lines: list[str]
    dropped: int = 0

    def render(self) -> str:
        if not self.lines:
            return ""
        body = "\n".join(f"- {line}" for line in self.lines)
        more = f"\n- ({self.dropped} more left out for length)" if self.dropped else ""
        return f"{self.title}:\n{body}{more}"


@dataclass(frozen=True, slots=True)
class FitResult:
    text: str
    tokens: int
    # Lines removed per section; a section with all its lines removed is not rendered at all.
    dropped: dict[SectionKind, int] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return any(self.dropped.values())


def _trim_one(sections: Sequence[Section], count: int) -> bool:
    """Remove up to `count` lines from the lowest-priority section that still has any."""
    for section in sorted(sections, key=lambda item: item.kind):
        if section.lines:
            take = min(count, len(section.lines))
            del section.lines[len(section.lines) - take :]
            section.dropped += take
            return True
    return False


def fit_sections(
    render: Callable[[Sequence[Section]], str],
    sections: Sequence[Section],
    budget: int,
    count_prompt: Callable[[str], int],
    count_line: Callable[[str], int],
) -> FitResult:
    """Render with as many section lines as fit in `budget` tokens, trimming by priority.

    `render` builds the per-analysis text from the given sections; `count_prompt` counts the
    complete prompt that text ends up in (static prefix and chat markers included), so the final
    check is exact. Sections are modified in place.
    """
    # First pass: cheap per-line counts bring a huge input close to the budget without
    # tokenizing the whole prompt once per dropped line. Only counted when over budget.
    total = count_prompt(render(sections))
    line_costs = (
        {id(section): [count_line(line) + 2 for line in section.lines] for section in sections}
        if total > budget
        else {}
    )
    while total > budget:
        victim = next((s for s in sorted(sections, key=lambda s: s.kind) if s.lines), None)
        if victim is None:
            break
        costs = line_costs[id(victim)]
        total -= costs.pop()
        victim.lines.pop()
        victim.dropped += 1
    # Second pass: measure exactly; per-line counts are only close (tokens merge across lines).
    text = render(sections)
    tokens = count_prompt(text)
    while tokens > budget:
        overflow = tokens - budget
        # Remove more at once when far over, one line at a time when close.
        if not _trim_one(sections, max(1, overflow // 64)):
            raise PromptTooLargeError(
                f"prompt needs {tokens} tokens without any optional section; budget is {budget}"
            )
        text = render(sections)
        tokens = count_prompt(text)
    return FitResult(
        text=text,
        tokens=tokens,
        dropped={section.kind: section.dropped for section in sections if section.dropped},
    )
