"""Everything that reconstructs, in one shape: the classical methods of each task and the method wrappers of the networks."""
