"""Exit statuses of the `progress` command line, shared by every command (see its --help)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the service refused the request, or (wait) a worker failed
EXIT_USAGE = 2  # bad arguments, no URL, no job id (argparse exits 2 too)
EXIT_TIMEOUT = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: a retry later may succeed, unlike a usage error
# `run`: what a shell answers for a command it cannot start
EXIT_CANNOT_EXECUTE = 126
EXIT_COMMAND_NOT_FOUND = 127
