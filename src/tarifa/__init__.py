"""Tarifa: business support system for telecom operators and ISPs."""

__version__ = "0.1.0"
