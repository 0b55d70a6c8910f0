"""One module per group of subcommands; each turns arguments into calls of the library or a track."""
