"""The roomc compiler: an ordered pipeline of passes (pipeline.PASSES) from YAML files to a route table."""
