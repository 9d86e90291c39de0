"""The language model: prompts, grammar, the client, the supervised model server and the
assessor that turns a window's detections into a scored, explained assessment. The risk
analysis (`gpu_server/risk/`) decides when to ask it and answers by rules otherwise."""
