"""Helpers the tests share: real servers started by the tests themselves (see ``postgres``)."""
