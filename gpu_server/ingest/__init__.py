"""The path of one frame up to its detections: intake (validate, decode), dedupe, the decode
memory budget, micro-batched detection across cameras, and the ingestor that ties them."""
