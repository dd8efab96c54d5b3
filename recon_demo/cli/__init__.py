"""The command-line tools, one module per command: ``python -m recon_demo COMMAND`` (``recon_demo.__main__``) runs
``evaluate``, ``train``, ``loss-study``, ``data``, ``restore`` and ``bench``.

Each module offers ``add_arguments(parser)`` (its flags) and ``main(args) -> int`` (the exit status), and its
docstring's first paragraph is the command's ``--help`` description. A command turns flags into the core's
configuration, runs it with its progress on stderr and prints the result; the computing lives below (``evaluate``,
``training``, ``lab``, ``bench``, ``datasets``). Nothing imports these modules but ``__main__``.
"""
