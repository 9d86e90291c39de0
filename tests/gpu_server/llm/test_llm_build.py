"""The installed llama.cpp must be a portable build: no AMX, no AVX-512, nothing native.

A native build takes AMX kernels on Sapphire Rapids-class CPUs (which crash there on batched
matrix products) and instructions older CPUs lack; scripts/setup_sidecar_env builds for an
AVX2/FMA/F16C baseline instead. llama_print_system_info lists the instruction sets compiled in.
"""

from __future__ import annotations

import re

import llama_cpp

# x86 instruction-set features a portable build may have compiled in: the AVX2 generation.
BASELINE = {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"}
# Names llama.cpp uses for instruction sets beyond that baseline.
BEYOND_BASELINE = re.compile(r"AMX|AVX512|AVX_VNNI|AVX_BF16|VNNI")


def compiled_features() -> dict[str, str]:
    info = llama_cpp.llama_print_system_info().decode()
    return dict(re.findall(r"([A-Z0-9_]+) = (\S+)", info))


def test_llama_cpp_was_built_without_amx_or_native_instructions() -> None:
    features = compiled_features()
    assert features, "llama_print_system_info() listed nothing"
    beyond = sorted(name for name in features if BEYOND_BASELINE.search(name))
    assert not beyond, f"llama.cpp was built with {beyond}: run scripts/setup_sidecar_env"
    assert features.get("AVX2") == "1", "the portable build targets AVX2"
    isa = {name for name in features if re.fullmatch(r"SSE\d*|SSSE3|AVX\d*|F16C|FMA|BMI\d*", name)}
    assert isa <= BASELINE, sorted(isa - BASELINE)


def test_the_check_would_catch_an_amx_build() -> None:
    sample = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 |"
    names = dict(re.findall(r"([A-Z0-9_]+) = (\S+)", sample))
    assert sorted(name for name in names if BEYOND_BASELINE.search(name)) == ["AMX_INT8", "AVX512"]
