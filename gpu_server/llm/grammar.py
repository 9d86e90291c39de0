"""A hand-written GBNF grammar that forces the model to emit exactly one valid assessment.

llama.cpp's JSON-schema converter lets raw control characters into strings and ignores integer
bounds, so output built from it often fails to parse. This grammar closes those gaps: every
output it allows parses into ModelOutput, and every output it allows is finite and bounded, so a
generation with max_tokens >= worst_case_tokens() always ends on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gpu_server.llm.schema import (
    ACTION_MAX_CHARS,
    REASONING_MAX_CHARS,
    SCENE_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    field_order,
)
from gpu_server.vocabulary import RiskLevel

# Characters a string may hold raw: not the quote or backslash (they need escapes), not C0/C1
# control characters, and not the invisible or direction-changing characters that could hide
# text from a person reading the event (zero-width, line/paragraph separators, bidi controls).
# Only the Basic Multilingual Plane: no emoji or rare scripts are needed in an event text.
_STRING_CHAR_CLASS: Final = (
    r'[^"\\\x00-\x1F\x7F-\x9F'
    r"\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF"
    r"\uD800-\uDFFF\U00010000-\U0010FFFF]"
)
# Only escapes that decode to a printable character; \n, \t and \uXXXX could smuggle in the
# control characters the class above keeps out.
_STRING_ESCAPE: Final = r'"\\" ["\\/]'
# llama.cpp decodes sequences by their lead byte without rejecting overlong forms, so a byte-level
# model can spend up to 4 bytes (tokens) on any allowed character.
_UTF8_MAX_BYTES: Final = 4
_ESCAPE_BYTES: Final = 2
_SCORE_MAX_BYTES: Final = 3


@dataclass(frozen=True, slots=True)
class GrammarLimits:
    """Maximum characters per string field and whitespace characters per gap."""

    summary: int = SUMMARY_MAX_CHARS
    reasoning: int = REASONING_MAX_CHARS
    recommended_action: int = ACTION_MAX_CHARS
    scene_description: int = SCENE_MAX_CHARS
    # Whitespace between tokens is allowed but bounded, or a model could pad forever.
    max_whitespace: int = 1

    def __post_init__(self) -> None:
        for name in (*_STRING_FIELDS, "scene_description", "max_whitespace"):
            if getattr(self, name) < 0:
                raise ValueError(f"grammar limit {name} must not be negative")

    def for_field(self, name: str) -> int:
        limit: int = getattr(self, name)
        return limit


_STRING_FIELDS: Final = ("summary", "reasoning", "recommended_action")
DEFAULT_LIMITS: Final = GrammarLimits()


def _string_fields(vision: bool) -> tuple[str, ...]:
    return ("scene_description", *_STRING_FIELDS) if vision else _STRING_FIELDS


def _literal(text: str) -> str:
    """A GBNF string literal for plain ASCII text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(name: str) -> str:
    return _literal(f'"{name}"')


def _rule_name(field: str) -> str:
    # GBNF rule names allow letters, digits and dashes only.
    return field.replace("_", "-") + "-string"


def build_grammar(limits: GrammarLimits = DEFAULT_LIMITS, *, vision: bool = False) -> str:
    """The GBNF text: one object, keys in field order, bounded values and whitespace."""
    members: list[str] = []
    for name in field_order(vision):
        value_rule = {"risk_score": "score", "risk_level": "level"}.get(name, _rule_name(name))
        members.append(f"{_key(name)} ws {_literal(':')} ws {value_rule}")
    body = f" ws {_literal(',')} ws ".join(members)
    levels = " | ".join(_literal(f'"{level.value}"') for level in RiskLevel)
    ws = '""' if limits.max_whitespace == 0 else f"[ \\t\\n]{{0,{limits.max_whitespace}}}"
    lines = [
        f"root ::= {_literal('{')} ws {body} ws {_literal('}')}",
        # 0..100 without leading zeros, so the number is valid JSON and within bounds.
        'score ::= "100" | [1-9] [0-9] | [0-9]',
        f"level ::= {levels}",
        f"char ::= {_STRING_CHAR_CLASS} | {_STRING_ESCAPE}",
        f"ws ::= {ws}",
    ]
    for name in _string_fields(vision):
        limit = limits.for_field(name)
        chars = f"char{{0,{limit}}} " if limit > 0 else ""
        lines.append(f'{_rule_name(name)} ::= "\\"" {chars}"\\""')
    return "\n".join(lines) + "\n"


def worst_case_bytes(limits: GrammarLimits = DEFAULT_LIMITS, *, vision: bool = False) -> int:
    """The longest output, in UTF-8 bytes, that the grammar allows."""
    fields = field_order(vision)
    keys = sum(len(name) + 2 for name in fields)
    punctuation = 2 + len(fields) + (len(fields) - 1)  # braces, colons, commas
    # Gaps: after "{", around each ":" and ",", before "}".
    gaps = 2 + 2 * len(fields) + 2 * (len(fields) - 1)
    level = max(len(level.value) for level in RiskLevel) + 2
    per_char = max(_UTF8_MAX_BYTES, _ESCAPE_BYTES)
    strings = sum(2 + per_char * limits.for_field(name) for name in _string_fields(vision))
    return keys + punctuation + gaps * limits.max_whitespace + _SCORE_MAX_BYTES + level + strings


def worst_case_tokens(limits: GrammarLimits = DEFAULT_LIMITS, *, vision: bool = False) -> int:
    """An upper bound on generated tokens: each token carries at least one byte, plus the end."""
    return worst_case_bytes(limits, vision=vision) + 1


def response_schema(
    limits: GrammarLimits = DEFAULT_LIMITS, *, vision: bool = False
) -> dict[str, object]:
    """The same shape as a JSON schema, for endpoints that constrain output by schema instead.

    Such converters are looser than the grammar (control characters, bounds), so the answer is
    validated against ModelOutput all the same.
    """
    string_fields = {
        name: {"type": "string", "maxLength": limits.for_field(name)}
        for name in _string_fields(vision)
    }
    return {
        "type": "object",
        "properties": {
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
            "risk_level": {"type": "string", "enum": [level.value for level in RiskLevel]},
            **string_fields,
        },
        "required": list(field_order(vision)),
        "additionalProperties": False,
    }
