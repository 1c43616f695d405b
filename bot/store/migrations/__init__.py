"""Alembic migrations of the store, shipped inside the package so ``shipthread db upgrade`` finds them.

A package (not a bare folder) so that ``env.py`` is installed with the wheel; the revisions in
``versions/`` and ``alembic.ini``/``script.py.mako`` ship as package data.
"""
