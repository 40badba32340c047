"""Jinja templates of the generated dataset card (installed as ``attrprompt_builder.cards``)."""
