"""Configuration: the settings schema (the one reader of the environment), its validators,

and the backends and tool files resolved from it."""
