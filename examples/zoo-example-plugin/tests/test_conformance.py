"""The zoo's conformance kit over this plugin's model: one line."""

from zoo.testing import conformance_tests

test_rbf_net = conformance_tests("rbf-net")
