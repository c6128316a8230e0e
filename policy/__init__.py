"""modelship's policy pack: the rules in `policy.rules`, the pack itself in `__main__.py`."""
