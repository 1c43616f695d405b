"""Emulators of the Slack Web API, Jenkins and the Kubernetes API, plus the tools to drive them.

They answer the real URLs of the systems they stand for, so slack-sdk, python-jenkins, the
kubernetes client and kubectl work against them unchanged. Each has a control API under
``/_sandbox/`` for what a test or the sandbox must steer. Used by the tests, the benchmarks and
``shipthread sandbox``; they import nothing of the production layers.
"""
