"""The path of one frame: intake (validate, decode), dedupe, batching and detection."""
