"""Configuration: the settings schema and its one reader of the environment, validators, the
backends and tool files resolved from it, and the reference page generated from the schema."""
