"""The command line: argument parsing, the console, one module per command, the error handler."""
