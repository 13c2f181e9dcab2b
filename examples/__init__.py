"""Worked examples of extending bprl (not part of the installed package); see docs/how-to/."""
