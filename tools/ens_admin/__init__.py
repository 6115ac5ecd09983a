"""ENS's admin CLI (`python -m ens_admin`): operator tooling, never shipped in a Lambda artifact.

See docs/admin-cli.md.
"""
