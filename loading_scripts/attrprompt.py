"""Dataset script for datasets 3.x users (``trust_remote_code=True``); datasets 5 needs no script.

    pip install attrprompt-builder
    load_dataset("path/to/loading_scripts/attrprompt.py", "agnews", endpoint=URL, trust_remote_code=True)

Everything lives in the ``attrprompt_builder`` package; this file only exposes its builder under
the name datasets 3.x looks for (a builder class defined in the script's own module).
"""

from attrprompt_builder.builder import AttrPromptBuilder


class Attrprompt(AttrPromptBuilder):
    """AttrPrompt synthetic classification datasets (see the attrprompt-builder README)."""
