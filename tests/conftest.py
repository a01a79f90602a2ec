# pytester must be enabled in the top-level conftest (pytest refuses
# pytest_plugins anywhere deeper); the conformance tests use it to run the
# suite in-process and inspect its outcome.
pytest_plugins = ["pytester"]
