"""The command-line face of ``attrprompt reproduce``: its own flags and the run.

Its build options are ``generate``'s, derived in ``cli.py`` from ``AttrPromptConfig``'s fields like
generate's flags, and arrive here as keywords; only the flags that are not build options live here.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from attrprompt_builder.reproduce.report import PAPER_TRAINING, QUICK_CLASSIFIER, format_reproduce
from attrprompt_builder.reproduce.run import reproduce

__all__ = ["REPRODUCE_FLAGS", "run_reproduce"]

_P = PAPER_TRAINING
# (add_argument's flags, its keywords); the training flags default to None: given ones override --quick.
REPRODUCE_FLAGS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--gold",),
        {"required": True, "help": "the real test set: a Hub dataset id or local dataset folder with the recipe's labels"},
    ),
    (("--gold-split",), {"default": "test", "help": "split of --gold to score on (default: test, else its only split)"}),
    (("--output", "-o"), {"required": True, "help": "work folder: attrprompt/, simprompt/, models/, results.md, results.json"}),
    (("--classifier",), {"help": f"encoder to fine-tune, Hub id or folder (default: {_P.model})"}),
    (("--quick",), {"action": "store_true", "help": f"fine-tune {QUICK_CLASSIFIER} (BERT-Mini) instead, for a quick run"}),
    (("--epochs",), {"type": float, "help": f"training epochs (default {_P.epochs:g})"}),
    (("--learning-rate",), {"type": float, "help": f"learning rate (default {_P.learning_rate:g})"}),
    (("--max-length",), {"type": int, "help": f"tokens per text (default {_P.max_length})"}),
    (("--train-batch-size",), {"type": int, "help": f"training batch size (default {_P.batch_size})"}),
)


def run_reproduce(args: argparse.Namespace, build_options: dict[str, Any]) -> int:
    """Run with parsed arguments and the build options ``cli.config_kwargs`` read from them; print the table."""
    base = replace(PAPER_TRAINING, model=QUICK_CLASSIFIER) if args.quick else PAPER_TRAINING
    given = {
        "model": args.classifier,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "batch_size": args.train_batch_size,
    }
    training = replace(base, seed=args.seed, **{name: value for name, value in given.items() if value is not None})
    report = reproduce(
        args.preset_or_recipe,
        args.output,
        gold=args.gold,
        gold_split=args.gold_split,
        training=training,
        num_proc=args.num_proc,
        cache_dir=args.cache_dir,
        token=args.token,
        overwrite=args.overwrite,
        **build_options,
    )
    print(format_reproduce(report))
    print("wrote " + " and ".join(str(path) for path in report.files))
    return 0
