"""Risk: every analysis ends in an assessment, by the language model (`gpu_server/llm/`) or by
the rules. `analysis.RiskAnalysis` is the entry point; `rules.py` answers whenever the model is
missing, failing or too slow."""
