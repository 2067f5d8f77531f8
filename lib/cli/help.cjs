'use strict'
// Owns the help texts of the lmdb-cache command-line tool: the tool's and each command's.

const PROGRAM = 'lmdb-cache'

const HELP = {
  main: `Usage: ${PROGRAM} <command> [options]

Commands:
  migrate --from <level-cache dir> --to <dir>   copy a level-cache (LevelDB) directory into this cache
  stats <dir>                                   entries, namespaces, sizes, readers
  sweep <dir>                                   delete expired entries
  dump <dir>                                    write the entries as JSON Lines
  load <dir> <file>                             read entries from a JSON Lines dump
  compact <dir>                                 reclaim free space in data.mdb
  verify <dir>                                  read every record; report damage (exit 1)

Run '${PROGRAM} <command> --help' for a command's options. --version prints the version.`,

  migrate: `Usage: ${PROGRAM} migrate --from <level-cache dir> --to <dir> [--namespace <ns>]... [--verify] [--json]

Copies every live entry of a @promethean/level-cache directory (LevelDB) into the lmdb-cache
directory <dir> (created if missing), keeping keys (namespaces included), values and absolute
expiries; entries already expired are skipped. The source is never modified, and must not be
open in another process. Safe to run again after an interruption: a re-run copies everything
again. Needs the 'level' package (npm install level).

Options:
  --from <dir>       the level-cache directory to read
  --to <dir>         the lmdb-cache directory to write
  --namespace <ns>   copy only the keys of this namespace (repeatable; nested: a/b)
  --verify           afterwards, re-read both sides and report any difference (exit 1 if any)
  --json             print the summary as JSON
  -h, --help         show this help`,

  stats: `Usage: ${PROGRAM} stats <dir> [--json]

Prints the number of entries (live and expired), live entries per namespace (the part of a
key before the first U+241F), the map size and its maximum, the size of data.mdb, the bytes in
use, and LMDB reader slots (the most ever in use at once, and the limit); for a bounded
directory (maxEntries, maxBytes) its bounds, the entries and bytes counted against them, and
the evictions, hits and misses of all processes (each process adds its counts to the
directory's with its writes). It changes no entry: expired entries are counted, not deleted (that is what '${PROGRAM} sweep' does).
Like any open, it removes what killed compactions left behind.

Options:
  --json       print the figures as JSON
  -h, --help   show this help`,

  sweep: `Usage: ${PROGRAM} sweep <dir> [--json]

Deletes every expired entry and prints how many were deleted.

Options:
  --json       print { "swept": n } as JSON
  -h, --help   show this help`,

  dump: `Usage: ${PROGRAM} dump <dir> [--namespace <ns>]... [--out <file> [--force]]

Writes the live entries as JSON Lines, one {"key","value","expiresAt"} object a line: key is
the full stored key (namespace + U+241F + key), expiresAt epoch milliseconds or null.

Options:
  --namespace <ns>   only the entries of this namespace (repeatable; nested: a/b)
  --out <file>       write to this file instead of standard output; never a file in a cache
                     directory (data.mdb, lock.mdb or beside them) nor inside <dir>
  --force            replace <file> if it exists (refused otherwise)
  -h, --help         show this help`,

  load: `Usage: ${PROGRAM} load <dir> <file>

Writes the entries of a JSON Lines dump (see '${PROGRAM} dump') into <dir> (created if
missing) with their keys, values and absolute expiries; entries already expired are skipped.
The whole file is checked before anything is written: a malformed line writes nothing. If the
cache fails midway (a full disk), the entries written so far stay, and the error says how many.

Options:
  -h, --help   show this help`,

  compact: `Usage: ${PROGRAM} compact <dir> [--force]

LMDB files never shrink by themselves. This writes a compacted copy of data.mdb (free pages
left out), checks it, and renames it over data.mdb. It refuses while another process has the
directory open (checked in /proc/locks, so on Linux only).

Options:
  --force      where other processes cannot be detected (not Linux), compact anyway
  -h, --help   show this help`,
}

HELP.verify = `Usage: ${PROGRAM} verify <dir> [--json]

Reads every page and record of the cache in <dir> without writing anything (LMDB opened
read-only), in a child process: damage that would crash a process reading the cache (a
truncated file, garbage over pages) is reported instead. Prints OK with the counts and exits 0,
or 'damaged: ...' naming what is wrong (the meta pages, damaged pages by number, the keys of
records that cannot be decoded, or the signal the walk died of and the last key it got past)
and exits 1.

Options:
  --json       print the result as JSON
  -h, --help   show this help`

module.exports = { PROGRAM, HELP }
