"""Figure infrastructure: one shared style, atomic saving with provenance, the artifact catalogue.

The artifacts themselves are the scripts in ``paper_repro/`` (one per figure or table).
"""
