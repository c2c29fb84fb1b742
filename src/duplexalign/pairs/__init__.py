"""Preference pairs: strategies (rewrite, retime, insert, voice), policy, filters, mixing, export."""
