"""Similarity across a class: pairs of submissions whose code or trained models are unusually alike.

Nothing here changes a grade. It lists pairs for a person to look at, with the evidence:
    code.py         copydetect (winnowed fingerprints of tokens, names filtered out) with the stub as boilerplate
    weights.py      identical weight files; weights near-identical after removing the checkpoint the class shares
    predictions.py  agreement of the judge's test-set predictions, against the class's own distribution
    stats.py        the class-relative threshold (median and MAD of all pairs, with a floor)
    compare.py      all of it for one class; models.py the pydantic report
"""
