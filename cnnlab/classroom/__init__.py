"""A class on one machine: anonymous identities, class limits, the fair queue, the teacher role.

Imports counting and training only (never views, cli, inside or experiments): the pages, the CLI
and the experiments room build on it.
"""
