"""Dunning (collections): see below."""


def evaluate_account(account, *, actor="system"):
    return None
