"""Command-line front ends of the ``fastnst`` subcommands that have no home module of their
own: each parses its options, calls the library and prints. See :mod:`fastnst.cli`."""
