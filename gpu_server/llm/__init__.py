"""Risk analysis: a local LLM (llama.cpp) turns a camera's detections into a scored, explained
security event, with rule-based scoring whenever the model is missing, failing or too slow.

`service.RiskAnalysis` is the entry point; everything else is one concept per module.
"""
