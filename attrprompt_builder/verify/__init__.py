"""What the rows say, measured against what was asked: label checks, attribute adherence, places mentioned.

Data flows recipe -> generation -> client -> filters -> verify -> dataset -> card; this stage reads
built rows (texts, labels, the attribute columns and prompts) and never sends a request itself.
"""
