"""The zoo's conformance kit over this plugin's models: one line."""

from zoo.testing import conformance_tests

test_models = conformance_tests("rbf-net", "mixup-mlp")
