"""File-to-file jobs behind the commands: row banding with a memory budget, one
module per command, batches, selection maps."""
