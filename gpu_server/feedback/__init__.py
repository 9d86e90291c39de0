"""The household's verdicts on events ("false alarm", "correct"), and what they calibrate."""

from gpu_server.feedback.calibration import (
    Calibration,
    CameraCounts,
    EventCase,
    Feedback,
    Finding,
    Verdict,
)
from gpu_server.feedback.store import (
    FEEDBACK_FILE,
    FeedbackOutcome,
    FeedbackSettings,
    FeedbackStore,
)

__all__ = [
    "FEEDBACK_FILE",
    "Calibration",
    "CameraCounts",
    "EventCase",
    "Feedback",
    "FeedbackOutcome",
    "FeedbackSettings",
    "FeedbackStore",
    "Finding",
    "Verdict",
]
