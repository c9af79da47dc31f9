"""The emulated world the tests run against: Runpod (GraphQL and REST v2) and the Hub as real
HTTP servers on 127.0.0.1, a real OpenSSH sshd as the pod, tiny models and data sets, a
webhook receiver and a pseudo-terminal. ``tests/plugins`` starts them as pytest fixtures;
the ``test_*.py`` files here test the emulators themselves."""
