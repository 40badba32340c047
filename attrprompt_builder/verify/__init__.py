"""What the rows say, measured against what was asked: label checks, attribute adherence, places mentioned.

Data flows recipe -> generation -> client -> filters -> verify -> dataset -> card. The LLM judge
(``judge.py``) asks its questions through the build's journaled client; the other checks read built
rows (texts, labels, the attribute columns and prompts) and send nothing.
"""
