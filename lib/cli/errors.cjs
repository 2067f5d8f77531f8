'use strict'
// Owns the two kinds of failure of the command-line tool: a UsageError (bad arguments: exit 2
// and a pointer to --help) and a CommandError (the command cannot do its work: one line and
// its exit code). Neither prints a stack trace.

class UsageError extends Error {}

class CommandError extends Error {
  constructor(message, exitCode = 1) {
    super(message)
    this.exitCode = exitCode
  }
}

module.exports = { UsageError, CommandError }
