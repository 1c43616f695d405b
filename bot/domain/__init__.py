"""The pure core of Shipthread: values, rules and maths, with no I/O and no framework.

Everything here is deterministic given its inputs (time is always passed in), so it can be tested
exhaustively and reasoned about without a network, a database or a clock.
"""
