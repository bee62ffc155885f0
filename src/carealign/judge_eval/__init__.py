"""How far a judge can be trusted: agreement between judges and with people, accuracy on labelled
responses, and how the choice of validator changes what an alignment run promotes.

It sits above :mod:`carealign.judge` (the judges themselves), which depends only on the domain,
generation and classification.
"""
