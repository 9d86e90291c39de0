"""The grammar against the real llama.cpp sampler on a tiny random model (loaded in the test)."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import llama_cpp
import pytest
from llama_cpp import Llama
from llama_cpp.llama_grammar import LlamaGrammar

from gpu_server.llm.grammar import GrammarLimits, build_grammar, worst_case_tokens
from gpu_server.llm.schema import FIELD_ORDER, ModelOutput

# Short strings keep each generation on the random model to a few hundred tokens.
TEST_LIMITS = GrammarLimits(summary=40, reasoning=80, recommended_action=40)



class GrammarError(Exception):
    pass


def check_grammar(llm: Llama, grammar: str) -> LlamaGrammar:
    """Parse the grammar with llama.cpp itself, as the model server will.

    llama-cpp-python hands a grammar to the sampler chain without checking that llama.cpp
    accepted it, and a rejected one crashes the process (here: the model server) at the first
    generation, so the one the sidecar sends must be known to parse.
    """
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise GrammarError("llama.cpp could not parse the grammar")
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(grammar, verbose=False)


PROMPT = "<|im_start|>user\nRate the risk.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def llm(tiny_gguf: Path) -> Llama:
    return Llama(str(tiny_gguf), n_ctx=2048, n_threads=2, seed=0, verbose=False)


def _generate(
    llm: Llama, limits: GrammarLimits, seed: int, temperature: float
) -> dict[str, object]:
    grammar = check_grammar(llm, build_grammar(limits))
    result = llm.create_completion(
        PROMPT,
        grammar=grammar,
        max_tokens=worst_case_tokens(limits),
        temperature=temperature,
        seed=seed,
    )
    assert isinstance(result, dict)
    choice = result["choices"][0]
    return {"text": choice["text"], "finish": choice["finish_reason"]}


def test_grammar_text_has_fixed_key_order_and_bounds() -> None:
    text = build_grammar(GrammarLimits(summary=5, reasoning=6, recommended_action=7))
    root = next(line for line in text.splitlines() if line.startswith("root ::="))
    positions = [root.index(f'\\"{name}\\"') for name in FIELD_ORDER]
    assert positions == sorted(positions)
    assert 'score ::= "100" | [1-9] [0-9] | [0-9]' in text
    assert "char{0,5}" in text
    assert "char{0,6}" in text
    assert "char{0,7}" in text
    assert "\\x00-\\x1F" in text


def test_llama_cpp_accepts_the_grammar_and_rejects_a_broken_one(llm: Llama) -> None:
    check_grammar(llm, build_grammar())
    with pytest.raises(GrammarError):
        check_grammar(llm, 'root ::= "a" missing-rule')


def test_twenty_seeded_generations_parse_and_end(llm: Llama) -> None:
    for seed in range(20):
        result = _generate(llm, TEST_LIMITS, seed, temperature=1.0)
        text = str(result["text"])
        # Ended by the grammar (an end token), not by running out of tokens.
        assert result["finish"] == "stop", text
        data = json.loads(text)
        assert list(data) == list(FIELD_ORDER)
        output = ModelOutput.model_validate(data)
        assert 0 <= output.risk_score <= 100
        assert len(output.summary) <= TEST_LIMITS.summary
        assert len(output.reasoning) <= TEST_LIMITS.reasoning
        assert len(output.recommended_action) <= TEST_LIMITS.recommended_action
        # Only JSON whitespace between tokens; no control characters in the values, raw or
        # smuggled in through escapes.
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)
        for value in (data["summary"], data["reasoning"], data["recommended_action"]):
            assert not any(unicodedata.category(char) == "Cc" for char in value)


def test_full_limits_end_within_the_worst_case(llm: Llama) -> None:
    result = _generate(llm, GrammarLimits(), seed=3, temperature=1.0)
    assert result["finish"] == "stop"
    ModelOutput.model_validate_json(str(result["text"]))


def test_same_seed_same_output(llm: Llama) -> None:
    first = _generate(llm, TEST_LIMITS, seed=11, temperature=0.8)
    second = _generate(llm, TEST_LIMITS, seed=11, temperature=0.8)
    assert first == second


def test_zero_length_strings_and_no_whitespace_are_allowed(llm: Llama) -> None:
    limits = GrammarLimits(summary=0, reasoning=0, recommended_action=0, max_whitespace=0)
    result = _generate(llm, limits, seed=1, temperature=1.0)
    data = json.loads(str(result["text"]))
    assert data["summary"] == data["reasoning"] == data["recommended_action"] == ""
    assert not re.search(r"\s", str(result["text"]))


def test_worst_case_grows_with_limits() -> None:
    small = worst_case_tokens(GrammarLimits(1, 1, 1))
    assert worst_case_tokens(GrammarLimits(2, 1, 1)) == small + 4
    assert worst_case_tokens() > worst_case_tokens(TEST_LIMITS)
    with pytest.raises(ValueError, match="negative"):
        GrammarLimits(summary=-1)
