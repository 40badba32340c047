"""``attrprompt reproduce``: the paper's comparison, AttrPrompt against SimPrompt, on any model in one command.

Both methods are generated with the same build options (same model, seed, samples per class, sampling
parameters, dedup, and each its own copy of the ``max_requests``/``max_tokens``/``max_cost`` caps);
only ``prompting`` differs. A classifier is trained on each and scored on a real test set; the table
adds what each build spent and the diversity measures ``compare`` takes.

Every phase resumes. Generation goes through the datasets cache and the journal, so a rerun sends
nothing; each trained model is saved with a marker keyed by the fingerprint of its training rows and
the training settings, and is reused when both match; its scores are kept per test set, so a new
test set scores the saved model instead of training it again.
"""

from attrprompt_builder.reproduce.report import (
    PAPER_TRAINING,
    QUICK_CLASSIFIER,
    MethodResult,
    ReproduceReport,
    TrainingSettings,
    format_reproduce,
)
from attrprompt_builder.reproduce.run import METHODS, reproduce

__all__ = [
    "METHODS",
    "MethodResult",
    "PAPER_TRAINING",
    "QUICK_CLASSIFIER",
    "ReproduceReport",
    "TrainingSettings",
    "format_reproduce",
    "reproduce",
]
