"""Real-service test infrastructure (no mocks).

* :mod:`.registry` -- start the CNCF distribution registry (plain, TLS, htpasswd, token auth),
  read its access log, count requests.
* :mod:`.tokenserver` -- a Docker token server signing RS256 JWTs for the registry.
* :mod:`.corpus` -- deterministic test images (bytes, digests) and pushing them.

Import as ``tests.support.<module>`` (``tests/conftest.py`` puts the repository root on
``sys.path``); mixing in ``support.<module>`` would load a second copy of each module.
"""
